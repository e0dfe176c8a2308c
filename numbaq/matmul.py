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

import numba
import numpy as np

from . import config, engine, schemes
from .checks import all_finite, as_float32, check_bias, check_shape, largest, output_overflow
from .codes import dynamic_quantize_2d
from .engine import gemm_path
from .kernels import epilogue as ke
from .kernels import gemm as kg
from .kernels import paths
from .ops import group_layout
from .qparams import QScheme
from .weights import QuantizedWeight, quantize_weight

INT32_MAX = 2**31 - 1
ACTIVATIONS = {None: ke.ACT_NONE, "relu": ke.ACT_RELU, "gelu": ke.ACT_GELU}
_INT_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


# ------------------------------------------------------------------ paths and limits
def info() -> dict:
    """What numbaq runs on: CPU, its features, the GEMM path and why, AMX, threads, cache.

    Returns
    -------
    dict
        ``cpu`` (LLVM's name), ``cpu_model`` (the model name the OS reports),
        ``cpu_features`` (those numbaq's paths use),
        ``gemm_path`` and ``gemm_path_reason`` (see :func:`gemm_path`),
        ``gemm_paths_available`` (every path this CPU can run, fastest first),
        ``gemm_path_7bit`` (the path of the ``uint7`` schemes, codes in [0, 127]),
        ``q4_kernel`` (the kernel of 4-bit block weights: ``vnni512``, ``avx2`` or
        ``plain``; :func:`numbaq.engine.q4_kernels`), ``amx``
        (whether the ``amx`` path runs here, or why not: features, permission, its
        self-check's verdict; :func:`numbaq.kernels.paths.amx_status`), ``threads`` (Numba's
        thread count) and ``cache`` (on-disk kernel caching).

    Examples
    --------
    >>> sorted(info())[:3]
    ['amx', 'cache', 'cpu']
    """
    from llvmlite import binding

    path, reason = gemm_path()
    return {
        "cpu": numba.config.CPU_NAME or binding.get_host_cpu_name(),
        "cpu_model": cpu_model(),
        "cpu_features": sorted(paths.cpu_features() & paths.known_features()),
        "gemm_path": path,
        "gemm_path_reason": reason,
        "gemm_paths_available": paths.available(),
        "gemm_path_7bit": paths.for_lhs(path, 127),
        "q4_kernel": engine.q4_kernels()[0],
        "amx": paths.amx_status(),
        "threads": numba.get_num_threads(),
        "cache": config.CACHE,
    }


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def max_k(a_span: int, b_span: int) -> int:
    """Largest K for which ``sum_k (a - za)(b - zb)`` cannot leave int32.

    With zero points 0: uint8 x int8: 255 * 128 -> K <= 65793; int8 x int8:
    128 * 128 -> K <= 131071; uint8 x uint8: 255 * 255 -> K <= 33025.

    Parameters
    ----------
    a_span : int
        Bound on ``|a - za|`` over the codes of ``a``.
    b_span : int
        Bound on ``|b - zb|`` over the codes of ``b``.

    Returns
    -------
    int
        ``(2**31 - 1) // (a_span * b_span)``.

    Examples
    --------
    >>> max_k(255, 128)
    65793
    """
    if type(a_span) is int and type(b_span) is int and a_span > 0 and b_span > 0:
        return INT32_MAX // (a_span * b_span)  # the verbs' case, checked in 60 ns
    for name, span in (("a_span", a_span), ("b_span", b_span)):
        if isinstance(span, (bool, np.bool_)) or not isinstance(span, (int, np.integer)):
            raise TypeError(f"{name} must be a positive int, got {span!r}")
        if span < 1:
            raise ValueError(f"{name} must be a positive int (a bound on |q - zp|), got {span}")
    return INT32_MAX // (a_span * b_span)


def _span(zero_point: np.ndarray, dtype) -> int:
    """Largest ``|q - zero_point|`` over the codes of ``dtype`` and the zero points."""
    info_ = np.iinfo(dtype)
    return int(max(zero_point.max() - info_.min, info_.max - zero_point.min()))


def check_k(k: int, a_span: int, b_span: int, what: str) -> None:
    limit = max_k(a_span, b_span)
    if k > limit:
        raise ValueError(
            f"K={k} can overflow the int32 accumulator for {what} "
            f"(|a - za| <= {a_span}, |b - zb| <= {b_span}: K must be <= {limit}); "
            "split the product along K and add the parts in int64"
        )


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


def _zero_points(zp, dtype, n: int, name: str, what: str, shapes) -> np.ndarray:
    """A zero point (scalar, or one per ``what`` in one of ``shapes``) as an int32 array
    of length ``n``; a vector of another shape is refused, never reshaped."""
    if zp is None:
        return np.zeros(n, np.int32)
    arr = np.asarray(zp)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer (of {np.dtype(dtype)}), got {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass a scalar or None")
    info_ = np.iinfo(dtype)
    if arr.min() < info_.min or arr.max() > info_.max:
        raise ValueError(f"{name} must lie in [{info_.min}, {info_.max}] for {np.dtype(dtype)}")
    if arr.size == 1:
        return np.full(n, arr.reshape(-1)[0], np.int32)
    check_shape(arr, shapes, name, f"one value per {what}; or a scalar")
    return arr.reshape(-1).astype(np.int32)


def matmul_integer(a, b, a_zero_point=None, b_zero_point=None) -> np.ndarray:
    """ONNX ``MatMulInteger``: ``(a - a_zero_point) @ (b - b_zero_point)`` in exact int32.

    Parameters
    ----------
    a : (M, K) uint8 or int8
        The left operand, e.g. quantized activations.
    b : (K, N) uint8 or int8
        The right operand, e.g. quantized weights transposed.
    a_zero_point : scalar, (M,) or (M, 1), optional
        Of ``a``'s dtype; a vector holds one zero point per row of ``a``.
    b_zero_point : scalar, (N,) or (1, N), optional
        Of ``b``'s dtype; a vector holds one zero point per column of ``b``. Other
        shapes of N values (as (N, 1)) are refused, never reshaped.

    Returns
    -------
    (M, N) int32 ndarray
        The exact products (no wrap: K is checked).

    Raises
    ------
    TypeError
        If ``a`` or ``b`` is not uint8 or int8, or a zero point is not an integer.
    ValueError
        If the shapes do not fit, a zero point is out of its dtype's range, or K could
        overflow int32 (:func:`max_k`).

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
    za = _zero_points(a_zero_point, a.dtype, m, "a_zero_point", "row of a", [(m,), (m, 1)])
    zb = _zero_points(b_zero_point, b.dtype, n, "b_zero_point", "column of b", [(n,), (1, n)])
    check_k(k, _span(za, a.dtype), _span(zb, b.dtype), f"{a.dtype} x {b.dtype}")
    a_buf, shift_a = engine.shift_lhs(a)
    b_t, shift_b = engine.shift_rhs(b)
    path = gemm_path()[0]  # resolved once: the packing and the kernel must agree
    out = engine.gemm_i32(a_buf, kg.pack(b_t, path), n, np.empty((m, n), np.int32), path)
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
        Added to every row of the output; none by default.
    scheme : QScheme or str, optional
        Activation scheme, default ``PER_TOKEN_UINT8``. Per tensor (``ONNX``,
        ``TORCH``), per row (``PER_TOKEN_*``) and per block (``BLOCK_Q8_0``, a slower
        plain path) are supported.
    activation : {None, "relu", "gelu"}
        Applied in the epilogue.

    Returns
    -------
    y : (..., N) float32 ndarray
        The Linear's output.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf, its last axis is not K, the scheme does not fit the
        weights, or the output overflows float32 (``|x| . |W|`` beyond 3.4e38; checked
        only when the activation scales say it can happen).

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
    sch = schemes.resolve(scheme)
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
    bias = qweight.zero_bias if bias is None else check_bias(bias, n)
    act = ACTIVATIONS.get(activation, -1) if isinstance(activation, (str, type(None))) else -1
    if act < 0:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    y, _, _ = linear_2d(x2d, qweight, bias, sch, act)
    return y.reshape(x.shape[:-1] + (n,))


OUTPUT_SAFE = 2.0**100
"""A bound on ``|x_hat . w_hat^T|`` under which the dynamic Linear's float32 output is
finite for any bias: the product's rounding errors stay far below the half step of
float32's largest value (``2**103``) that would round a finite bias up to Inf."""


def linear_2d(x2d, qweight: QuantizedWeight, bias, sch: QScheme, act: int, y=None):
    """The dynamic Linear on validated inputs: ``x2d`` (M, K) float32 C-contiguous,
    ``bias`` (N,) float32, ``y`` (M, N) float32 C-contiguous or None (a new array).
    Returns ``(y, scale, zero_point)``, the runtime activation parameters: (M,) per row
    or per tensor, (M, K // block) per block."""
    limit = check_linear_scheme(sch, qweight)  # once per (scheme, weights); then a lookup
    if y is None:
        y = np.empty((x2d.shape[0], qweight.shape[0]), np.float32)
    if sch.granularity == "block" or qweight.group_size:
        scale = _linear_blocks(x2d, qweight, bias, sch, act, y)
        zero_point = np.zeros(scale.shape, np.int32)
    else:
        scale, zero_point = engine.dynamic_linear(x2d, sch, qweight, bias, act, y)
    # the output can leave float32 only where some activation scale reaches ``limit``
    top = scale.item() if scale.size == 1 else largest(scale)  # M = 1 inline: 70 ns less
    if top >= limit and not all_finite(y):
        raise output_overflow(
            "the output x . W^T + bias",
            "|x| times |W| summed over K reaches float32's largest value: rescale x "
            "(or the weights)",
        )
    return y, scale, zero_point


MAX_BLOCK = max_k(255, 128)
"""The longest block of K the per-block kernel sums in int32: codes ``q + 128`` in
[1, 255] times int8 weights."""


def check_linear_scheme(sch: QScheme, qweight: QuantizedWeight, owner: str = "") -> None:
    """Refuse an activation scheme that cannot run with ``qweight`` in the dynamic Linear.

    Checked once, when a layer is built (and on each :func:`quantized_linear` call): the
    per-block kernel reads blocks four values at a time and sums each in int32, so a
    block (``block_size`` of the scheme, or ``group_size`` of the weights) must be a
    multiple of 4 and at most :data:`MAX_BLOCK`; other schemes need K within the int32
    bound (:func:`max_k`).

    Parameters
    ----------
    sch : QScheme
        The activation scheme.
    qweight : QuantizedWeight
        The weights it will multiply.
    owner : str
        The layer's name, to start the error message with.

    Returns
    -------
    float
        The activation scale from which the Linear's output could overflow float32:
        below it, ``|x_hat . w_hat^T| < OUTPUT_SAFE`` (codes ``|q - zero_point| <= 255``,
        weights ``|q| <= 128``); at or above it, the caller checks the output.

    Raises
    ------
    ValueError
        If the pair cannot run; the message says which setting to change.

    Examples
    --------
    >>> limit = check_linear_scheme(schemes.PER_TOKEN_INT8, quantize_weight(np.ones((2, 8))))
    """
    # checked once per (scheme, weights); then a dict lookup
    return qweight.derived(("scheme checked", sch), _check_linear_scheme, sch, qweight, owner)


def _check_linear_scheme(sch: QScheme, qweight: QuantizedWeight, owner: str) -> float:
    _check_scheme_fits(sch, qweight, owner)
    k = qweight.shape[1]
    return OUTPUT_SAFE / (k * 255.0 * 128.0 * float(qweight.scale.max()))


def _check_scheme_fits(sch: QScheme, qweight: QuantizedWeight, owner: str) -> None:
    head = f"{owner}: " if owner else ""
    if sch.granularity == "column":
        raise ValueError(
            f"{head}per-column activation scales cannot be taken out of the sum over K; "
            "use a scheme with granularity 'tensor', 'row' or 'block'"
        )
    if sch.granularity != "block" and not qweight.group_size:
        qmin, qmax = sch.clamp_range
        try:
            check_k(qweight.shape[1], qmax - qmin, 128, "activations x int8 weights")
        except ValueError as err:
            raise ValueError(f"{head}{err}") from None
        return
    block = qweight.group_size or sch.block_size
    name = "group_size of the weights" if qweight.group_size else "block_size of the scheme"
    if sch.granularity == "block" and qweight.group_size and sch.block_size != block:
        raise ValueError(
            f"{head}activation blocks ({sch.block_size}) must match the weight groups "
            f"({block}); use block_size={block}"
        )
    if not sch.symmetric or sch.storage is not np.int8 or sch.granularity not in ("row", "block"):
        raise ValueError(
            f"{head}per-block scales need symmetric int8 activations per row or per block "
            "(PER_TOKEN_INT8, BLOCK_Q8_0)"
        )
    if block % 4:
        raise ValueError(
            f"{head}{name} is {block}: the integer GEMM reads K four values at a time, so a "
            "block must be a multiple of 4 (e.g. 32)"
        )
    if block > MAX_BLOCK:
        raise ValueError(
            f"{head}{name} is {block}: one block's int32 sum can overflow beyond "
            f"{MAX_BLOCK} values; use a smaller block"
        )
    k = qweight.shape[1]
    if k % block:
        raise ValueError(
            f"{head}in_features K = {k} is not a multiple of the {name} ({block}); pad the "
            f"inputs and weights to a multiple of {block}, or pick a block that divides {k}"
        )


def _linear_blocks(x2d, qweight: QuantizedWeight, bias, sch: QScheme, act: int, y):
    """Scales per block of K, for the activations, the weights, or both: an int32 dot
    per block, the blocks summed in float32. Returns the activation scales (M, blocks)."""
    block = qweight.group_size or sch.block_size  # checked by check_linear_scheme
    if (
        sch.granularity == "block"
        and sch.symmetric
        and sch.storage is np.int8
        and qweight.group_size in (None, sch.block_size)
    ):  # one fused kernel call (BLOCK_Q8_0)
        return engine.dynamic_linear_blocks(x2d, sch, qweight, bias, act, y)
    m, k = x2d.shape
    n_blocks = k // block
    layout = group_layout(x2d, sch.granularity, sch.block_size)[0]
    q = np.empty(layout.shape, np.int8)
    scale, _ = dynamic_quantize_2d(layout, sch, q)
    a_scale = scale.reshape(m, -1)
    if a_scale.shape[1] != n_blocks:
        a_scale = np.repeat(a_scale, n_blocks, axis=1)
    engine.linear_blocks(q.reshape(m, k), a_scale, qweight, block, bias, act, y)
    return scale.reshape(m, -1)


__all__ = [
    "INT32_MAX",
    "QuantizedWeight",
    "check_linear_scheme",
    "gemm_path",
    "info",
    "matmul_integer",
    "max_k",
    "quantize_weight",
    "quantized_linear",
]
