"""Public verbs from floats to integer codes and back: validate, convert, call a kernel.

::

    q = quantize(x, qp)                       # float -> int, with given qparams
    x_hat = dequantize(q, qp)                 # int -> float
    q, qp = dynamic_quantize(x, scheme)       # runtime stats, qparams, quantize: one pass

The statistics and qparams verbs they build on are in :mod:`numbaq.ops`.
"""

from __future__ import annotations

import numpy as np

from . import schemes
from .checks import (
    FLOAT32_MAX,
    all_finite,
    as_float32,
    check_finite,
    check_scales,
    output_overflow,
    raise_nonfinite,
)
from .kernels import quantize as kq
from .ops import (
    choose_qparams,
    group_layout,
    make_qparams,
    pick_kernel,
    row_params,
    scheme_with,
)
from .qparams import DTYPES, QParams, QScheme


def check_qparams(qparams: QParams, param_shape, name: str = "x") -> None:
    if qparams.scale.shape != tuple(param_shape):
        raise ValueError(
            f"qparams.scale has shape {qparams.scale.shape}, but {name} at granularity "
            f"{qparams.granularity!r} needs {tuple(param_shape)}"
        )
    if not np.all((qparams.scale > 0) & np.isfinite(qparams.scale)):
        raise ValueError("qparams.scale must be positive and finite")
    zp = np.asarray(qparams.zero_point)
    if zp.shape != qparams.scale.shape and zp.size != 1:
        raise ValueError(
            f"qparams.zero_point has shape {zp.shape}; it needs the shape of qparams.scale "
            f"{qparams.scale.shape} (or one value)"
        )
    if qparams.dtype not in DTYPES:
        raise ValueError(f"qparams.dtype must be one of {sorted(DTYPES)}, got {qparams.dtype!r}")
    _, lo, hi = DTYPES[qparams.dtype]
    if not lo <= qparams.qmin <= qparams.qmax <= hi:
        raise ValueError(
            f"qparams.qmin, qmax = {qparams.qmin}, {qparams.qmax} must satisfy "
            f"{lo} <= qmin <= qmax <= {hi} for {qparams.dtype}"
        )
    if zp.dtype.kind not in "iu" or (zp.size and (zp.min() < lo or zp.max() > hi)):
        raise ValueError(f"qparams.zero_point must be integers in [{lo}, {hi}]")


def quantize(x, qparams: QParams) -> np.ndarray:
    """Quantize ``x`` with given parameters (static quantization of one tensor).

    Parameters
    ----------
    x : (..., K) float array
        The values; float16 and float64 are converted to float32.
    qparams : QParams
        From :func:`choose_qparams`, :func:`qparams_from_minmax` or by hand.

    Returns
    -------
    q : int8 or uint8 ndarray, shape of ``x``
        The quantized values, in the storage dtype of ``qparams``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf, or its shape does not fit ``qparams``.

    Notes
    -----
    .. math:: q = \\mathrm{clip}(\\mathrm{round}(x / s) + z, q_{min}, q_{max})

    Plain text: ``q = clip(round(x / scale) + zero_point, qmin, qmax)``, round half
    to even; ``x * (1 / scale)`` when the scheme says ``reciprocal``.

    Examples
    --------
    >>> x = np.array([-1.0, 0.0, 0.5, 2.0])
    >>> quantize(x, choose_qparams(x, "ONNX")).tolist()  # 0.5 / scale = 42.5 rounds to 42
    [0, 85, 127, 255]
    """
    if not isinstance(qparams, QParams):
        raise TypeError(f"qparams must be a QParams, got {type(qparams).__name__}")
    x = as_float32(x)
    x2d, by_column, shape = group_layout(x, qparams.granularity, qparams.block_size)
    check_qparams(qparams, shape)
    check_finite(x)
    reciprocal = bool(qparams.scheme is not None and qparams.scheme.reciprocal)
    q = np.empty(x2d.shape, qparams.storage)
    if by_column:
        kernel = pick_kernel(kq._quantize_cols, kq._quantize_cols_par, x.size)
        scale = np.ascontiguousarray(qparams.scale)
        zp = np.ascontiguousarray(np.broadcast_to(qparams.zero_point, scale.shape), np.int32)
    else:
        kernel = pick_kernel(kq._quantize_rows, kq._quantize_rows_par, x.size)
        scale = row_params(qparams.scale, x2d.shape[0], np.float32)
        zp = row_params(qparams.zero_point, x2d.shape[0], np.int32)
    kernel(x2d, scale, zp, qparams.qmin, qparams.qmax, reciprocal, q)
    return q.reshape(x.shape)


def dequantize(q, qparams: QParams) -> np.ndarray:
    """Map quantized values back to float32.

    Parameters
    ----------
    q : (..., K) int8 or uint8 ndarray
        Storage dtype of ``qparams``.
    qparams : QParams
        The parameters ``q`` was quantized with.

    Returns
    -------
    x_hat : float32 ndarray, shape of ``q``
        ``(q - zero_point) * scale``.

    Raises
    ------
    TypeError
        If ``q``'s dtype is not the storage dtype of ``qparams``.
    ValueError
        If ``q`` does not fit ``qparams``, or the result overflows float32 (scales
        near float32's largest value).

    Notes
    -----
    .. math:: \\hat{x} = (q - z) \\cdot s

    Plain text: ``x_hat = (q - zero_point) * scale``, in float32.

    Examples
    --------
    >>> x = np.array([-1.0, 0.0, 0.5, 2.0])
    >>> qp = choose_qparams(x, "ONNX")
    >>> dequantize(quantize(x, qp), qp).astype(float).round(4).tolist()
    [-1.0, 0.0, 0.4941, 2.0]
    """
    return dequantize_as(q, qparams, "(q - zero_point) * scale", "use smaller qparams.scale")


def dequantize_as(q, qparams: QParams, name: str, fix: str) -> np.ndarray:
    """:func:`dequantize`; a result beyond float32's range is an error calling the result
    ``name`` and saying ``fix`` (the verbs that dequantize their own codes name their input)."""
    if not isinstance(qparams, QParams):
        raise TypeError(f"qparams must be a QParams, got {type(qparams).__name__}")
    q = np.asarray(q)
    if q.dtype != qparams.storage:
        raise TypeError(
            f"q must have dtype {np.dtype(qparams.storage)} for {qparams.dtype}, got {q.dtype}"
        )
    if q.size == 0:
        raise ValueError(f"q is empty (shape {q.shape})")
    q = np.ascontiguousarray(q)
    q2d, by_column, shape = group_layout(q, qparams.granularity, qparams.block_size, "q")
    check_qparams(qparams, shape, "q")
    out = np.empty(q2d.shape, np.float32)
    if by_column:
        zp = np.ascontiguousarray(np.broadcast_to(qparams.zero_point, qparams.scale.shape))
        kq._dequantize_cols(q2d, np.ascontiguousarray(qparams.scale), zp, out)
    else:
        kernel = pick_kernel(kq._dequantize_rows, kq._dequantize_rows_par, q.size)
        kernel(
            q2d,
            row_params(qparams.scale, q2d.shape[0], np.float32),
            row_params(qparams.zero_point, q2d.shape[0], np.int32),
            out,
        )
    # |q - zero_point| <= 255: only a scale past FLOAT32_MAX / 256 can overflow
    if float(qparams.scale.max()) * 256 > FLOAT32_MAX and not all_finite(out):
        raise output_overflow(name, fix)
    return out.reshape(q.shape)


def dynamic_quantize(x, scheme=None, **overrides):
    """Quantize ``x`` with parameters computed from ``x`` itself, at runtime.

    Parameters
    ----------
    x : (..., K) float array
        The values; float16 and float64 are converted to float32.
    scheme : QScheme or str, optional
        Defaults to ``PER_TOKEN_UINT8``.
    **overrides
        Fields of the scheme to replace, e.g. ``dtype="int4"``.

    Returns
    -------
    q : int8 or uint8 ndarray, shape of ``x``
        The quantized values.
    qparams : QParams
        The scale and zero point chosen from ``x``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf.

    Notes
    -----
    Per row and per block this is one fused pass: each row's min/max, its scale and
    zero point, and its quantized values are computed while the row is in cache.
    Per tensor is one kernel call making two passes (the scale needs the whole
    tensor's range first); per column runs the stages one after the other. The
    result equals
    ``quantize(x, choose_qparams(x, scheme))`` bit for bit::

        q = clip(round(x / scale) + zero_point, qmin, qmax)

    Examples
    --------
    >>> q, qp = dynamic_quantize(np.array([[0.5, -1.0], [2.0, 4.0]]), "PER_TOKEN_INT8")
    >>> q.tolist(), qp.scale.tolist()
    ([[64, -127], [64, 127]], [0.007874015718698502, 0.031496062874794006])
    """
    sch = scheme_with(scheme, overrides)
    if sch.granularity == "column":
        qparams = choose_qparams(x, sch)
        return quantize(x, qparams), qparams
    x = as_float32(x)
    x2d, _, shape = group_layout(x, sch.granularity, sch.block_size)
    q = np.empty(x2d.shape, sch.storage)
    scale, zero_point = dynamic_quantize_2d(x2d, sch, q)
    return q.reshape(x.shape), make_qparams(sch, scale.reshape(shape), zero_point.reshape(shape))


def dynamic_quantize_2d(x2d: np.ndarray, sch: QScheme, q: np.ndarray):
    """Fused dynamic quantization of the rows of ``x2d`` into ``q`` (``sch.storage``).

    Per tensor (one scale for all of ``x2d``) or one scale per row (``row`` and
    ``block`` granularities, after :func:`group_layout`). Returns ``scale`` (R,) float32
    and ``zero_point`` (R,) int32, or 0-d arrays per tensor; raises on NaN/Inf.
    """
    n_rows = x2d.shape[0]
    smin, smax = sch.scale_range
    qmin, qmax = sch.clamp_range
    args = (x2d, smin, smax, qmin, qmax, sch.symmetric, sch.rule == "torch", sch.reciprocal, q)
    if sch.granularity == "tensor":
        kernel = pick_kernel(kq._dynamic_quantize_tensor, kq._dynamic_quantize_tensor_par, x2d.size)
        scale, zero_point, n_bad = kernel(
            *args, np.empty(n_rows, np.float32), np.empty(n_rows, np.float32)
        )
        scale, zero_point = np.array(scale, np.float32), np.array(zero_point, np.int32)
    else:
        scale = np.empty(n_rows, np.float32)
        zero_point = np.empty(n_rows, np.int32)
        kernel = pick_kernel(kq._dynamic_quantize_rows, kq._dynamic_quantize_rows_par, x2d.size)
        n_bad = kernel(*args, scale, zero_point)
    raise_nonfinite("x", n_bad, "rows" if sch.granularity != "block" else "blocks")
    if not sch.symmetric:
        check_scales(scale, "x")
    return scale, zero_point


def fake_quantize(x, scheme=None, **overrides) -> np.ndarray:
    """Quantize then dequantize: what the integer pipeline "sees" of ``x``, in float32.

    Parameters
    ----------
    x : (..., K) float array
        The values; float16 and float64 are converted to float32.
    scheme : QScheme, str or QParams, optional
        A scheme (dynamic: parameters from ``x``) or fixed ``QParams`` (static).
    **overrides
        Fields of the scheme to replace, e.g. ``granularity="column"``.

    Returns
    -------
    x_hat : float32 ndarray, shape of ``x``
        ``dequantize(quantize(x))``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf, or lies so close to float32's largest value that
        its dequantized codes overflow float32.

    Notes
    -----
    ``x_hat = (clip(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale``.
    Inside the range, ``|x - x_hat| <= scale / 2``.

    Examples
    --------
    >>> fake_quantize(np.array([0.1, -0.7, 1.0]), "PER_TOKEN_INT8").astype(float).round(4).tolist()
    [0.1024, -0.7008, 1.0]
    """
    name = "x quantized and dequantized"
    fix = "x lies within one quantization step of float32's largest value: rescale x"
    if isinstance(scheme, QParams):
        if overrides:
            raise TypeError("overrides apply to a scheme, not to fixed QParams")
        return dequantize_as(quantize(x, scheme), scheme, name, fix)
    q, qparams = dynamic_quantize(x, scheme, **overrides)
    return dequantize_as(q, qparams, name, fix)


def dynamic_quantize_linear(x):
    """ONNX ``DynamicQuantizeLinear``, exactly.

    Parameters
    ----------
    x : float array, any shape
        The values; float16 and float64 are converted to float32.

    Returns
    -------
    y : uint8 ndarray, shape of ``x``
        The quantized values.
    y_scale : float32 0-d ndarray
        The scale.
    y_zero_point : uint8 0-d ndarray
        The zero point.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf.

    Notes
    -----
    .. math::

        s = \\frac{\\max(x_{max}, 0) - \\min(x_{min}, 0)}{255},\\quad
        z = \\mathrm{round}(\\mathrm{clip}(-\\min(x_{min}, 0) / s, 0, 255)),\\quad
        y = \\mathrm{clip}(\\mathrm{round}(x / s) + z, 0, 255)

    Plain text::

        y_scale = (max(x_max, 0) - min(x_min, 0)) / 255     (1/255 if the range is 0)
        y_zero_point = round(clip(-min(x_min, 0) / y_scale, 0, 255))
        y = clip(round(x / y_scale) + y_zero_point, 0, 255)

    Examples
    --------
    >>> y, s, z = dynamic_quantize_linear(np.array([0, 2, -3, -2.5, 1.34, 0.5]))
    >>> y.tolist(), round(float(s), 8), int(z)
    ([153, 255, 0, 26, 221, 179], 0.01960784, 153)
    """
    q, qparams = dynamic_quantize(x, schemes.ONNX)
    return q, qparams.scale, qparams.zero_point.astype(np.uint8)
