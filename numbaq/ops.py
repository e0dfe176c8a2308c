"""Public verbs of the quantization math: validate, convert, call a kernel.

Each stage is callable on its own so a lesson can print every intermediate::

    lo, hi = minmax(x, "row")                 # runtime statistics
    qp = choose_qparams(x, PER_TOKEN_INT8)    # scale and zero point
    q = quantize(x, qp)                       # float -> int
    x_hat = dequantize(q, qp)                 # int -> float

:func:`dynamic_quantize` fuses the three stages into one pass per row block.
"""

from __future__ import annotations

import numpy as np

from . import config, schemes
from .kernels import quantize as kq
from .kernels import stats as ks
from .qparams import DTYPES, GRANULARITIES, QParams, QScheme

DEFAULT_SCHEME = schemes.PER_TOKEN_UINT8
"""The scheme used when none is given: asymmetric uint8, one scale and zero point per
token. It is as fast as symmetric int8 here (the int8 path pays the same zero-point
correction for its +128 shift) and uses all 256 codes on one-sided activations (after a
ReLU or GELU): on all-MiniLM-L6-v2 the lowest cosine to fp32 over 64 sentences is 0.988,
against 0.969 for ``PER_TOKEN_INT8``."""


# ----------------------------------------------------------------------------- checks
def as_float32(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ndarray, or raise a clear error.

    float16 and float64 are converted (a copy); so is a non-contiguous array.
    Integer, boolean and complex arrays, and empty arrays, are refused.
    """
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous and x.size:
        return x  # the common case, without the cost of np.asarray (about 1 us)
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array (float16, float32 or float64), "
            f"got dtype {arr.dtype}; convert it with {name}.astype(np.float32)"
        )
    if arr.size == 0:
        raise ValueError(
            f"{name} is empty (shape {arr.shape}); quantization needs at least one value"
        )
    with np.errstate(over="ignore"):  # float64 beyond float32 becomes Inf, reported later
        return np.asarray(arr, dtype=np.float32, order="C")  # keeps 0-d arrays 0-d


def _raise_nonfinite(name: str, n_bad: int, what: str) -> None:
    if n_bad:
        raise ValueError(
            f"{name} contains NaN or Inf (in {n_bad} {what}, after conversion to float32); "
            "no scale can be chosen for it. Clean it first, e.g. np.nan_to_num(x)"
        )


def check_finite(x: np.ndarray, name: str = "x") -> None:
    """Raise a ``ValueError`` naming ``name`` if float32 ``x`` holds NaN or Inf.

    One exact min/max pass over the bits (:mod:`numbaq.kernels.stats`), for the paths
    whose kernels do not report non-finite values themselves (fixed qparams).

    Parameters
    ----------
    x : float32 ndarray, C-contiguous
    name : str
        How the error message calls ``x``.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf.

    Examples
    --------
    >>> check_finite(np.ones(3, np.float32))
    """
    flat = x.reshape(-1)
    if config.use_parallel(flat.size):
        n_bad = ks._minmax_flat_par(flat, config.num_threads())[2]
    else:
        n_bad = ks._minmax_flat(flat)[2]
    if n_bad:
        raise ValueError(
            f"{name} contains NaN or Inf (after conversion to float32); fixed quantization "
            f"parameters would turn them into codes silently. Clean it first, e.g. "
            "np.nan_to_num"
        )


def _check_scales(scale: np.ndarray, name: str) -> None:
    if not np.isfinite(scale.max()):
        raise ValueError(
            f"the range of {name} overflows float32 (max - min is Inf); "
            f"rescale {name} or use a symmetric scheme"
        )


# ----------------------------------------------------------------------------- layout
def _layout(x: np.ndarray, granularity: str, block_size: int | None, name: str = "x"):
    """View ``x`` as the 2-D array a kernel walks, and the shape of its parameters.

    Returns ``(x2d, by_column, param_shape)``: rows of ``x2d`` share one parameter
    unless ``by_column``, where each column has its own.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity == "tensor":
        width = x.shape[-1] if x.ndim else 1
        return x.reshape(-1, width), False, ()
    if x.ndim == 0:
        raise ValueError(
            f"granularity {granularity!r} needs {name} with at least one axis; "
            "a 0-d array has only granularity 'tensor'"
        )
    k = x.shape[-1]
    if granularity == "row":
        return x.reshape(-1, k), False, x.shape[:-1]
    if granularity == "column":
        return x.reshape(-1, k), True, (k,)
    if k % block_size:
        raise ValueError(
            f"block_size={block_size} does not divide the last axis of {name} ({k}); "
            f"pad {name} to a multiple of {block_size} or pick a divisor of {k}"
        )
    return x.reshape(-1, block_size), False, x.shape[:-1] + (k // block_size,)


def _pick(serial, parallel, n_elements: int):
    return parallel if config.use_parallel(n_elements) else serial


def _row_params(param: np.ndarray, n_rows: int, dtype) -> np.ndarray:
    """One parameter per row of the kernel's 2-D view (a scalar is repeated)."""
    flat = np.ascontiguousarray(param, dtype=dtype).reshape(-1)
    return np.full(n_rows, flat[0], dtype) if flat.size == 1 and n_rows != 1 else flat


# ----------------------------------------------------------------------------- stats
def minmax(x, granularity: str = "tensor", block_size: int | None = None):
    """Runtime minimum and maximum of ``x`` at a granularity.

    Parameters
    ----------
    x : (..., K) float array
        float16/float64 are converted to float32.
    granularity : {"tensor", "row", "column", "block"}
        ``row``: one pair per leading index (per token). ``column``: one per index
        of the last axis (per channel). ``block``: one per ``block_size`` run of the
        last axis.
    block_size : int, optional
        Block length, with ``granularity="block"``.

    Returns
    -------
    min, max : float32 ndarrays
        Shape ``()`` per tensor, ``x.shape[:-1]`` per row, ``(K,)`` per column,
        ``x.shape[:-1] + (K // block_size,)`` per block.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf, or ``granularity`` / ``block_size`` are invalid.

    Notes
    -----
    Exact: the kernels reduce the float32 bit patterns as integers (see
    :mod:`numbaq.kernels.stats`).

    Examples
    --------
    >>> lo, hi = minmax(np.array([[1.0, -2.0], [3.0, 0.5]]), "row")
    >>> lo.tolist(), hi.tolist()
    ([-2.0, 0.5], [1.0, 3.0])
    """
    if not isinstance(granularity, str):
        raise TypeError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity == "block":
        QScheme(granularity="block", block_size=block_size)  # validates block_size
    x = as_float32(x)
    if granularity == "tensor":
        flat = x.reshape(-1)
        if config.use_parallel(flat.size):
            lo, hi, n_bad = ks._minmax_flat_par(flat, config.num_threads())
        else:
            lo, hi, n_bad = ks._minmax_flat(flat)
        _raise_nonfinite("x", n_bad, "tensor")
        return np.array(lo, np.float32), np.array(hi, np.float32)
    x2d, by_column, shape = _layout(x, granularity, block_size)
    n = x2d.shape[1] if by_column else x2d.shape[0]
    lo = np.empty(n, np.float32)
    hi = np.empty(n, np.float32)
    if by_column:
        n_bad = ks._minmax_cols(x2d, lo, hi)
    else:
        n_bad = _pick(ks._minmax_rows, ks._minmax_rows_par, x.size)(x2d, lo, hi)
    _raise_nonfinite("x", n_bad, "columns" if by_column else "rows")
    return lo.reshape(shape), hi.reshape(shape)


def absmax(x, granularity: str = "tensor", block_size: int | None = None) -> np.ndarray:
    """Runtime ``max(|x|)`` at a granularity; shapes as :func:`minmax`.

    Parameters
    ----------
    x : (..., K) float array
        The values; float16 and float64 are converted to float32.
    granularity : {"tensor", "row", "column", "block"}
        As in :func:`minmax`.
    block_size : int, optional
        Block length, with ``granularity="block"``.

    Returns
    -------
    ndarray of float32
        ``max(|x|)`` per group: shape ``()`` per tensor, ``x.shape[:-1]`` per row,
        ``(K,)`` per column, ``x.shape[:-1] + (K // block_size,)`` per block.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf.

    Examples
    --------
    >>> absmax(np.array([1.0, -3.0, 2.0])).item()
    3.0
    """
    lo, hi = minmax(x, granularity, block_size)
    return np.maximum(-lo, hi)


# ----------------------------------------------------------------------------- qparams
def _scheme(scheme, overrides: dict) -> QScheme:
    base = DEFAULT_SCHEME if scheme is None else schemes.get(scheme)
    return base.replace(**overrides) if overrides else base


def qparams_from_minmax(min, max, scheme=None, **overrides) -> QParams:
    """Scale and zero point for given ranges ``[min, max]`` under a scheme.

    Parameters
    ----------
    min, max : float arrays of one shape
        Observed minimum and maximum of each group (``()`` for one tensor).
    scheme : QScheme or str, optional
        Defaults to ``PER_TOKEN_UINT8``.
    **overrides
        Fields of the scheme to replace, e.g. ``dtype="int4"``.

    Returns
    -------
    QParams
        ``scale`` float32 and ``zero_point`` int32 of the shape of ``min``.

    Notes
    -----
    The range is widened to include 0, then (``onnx`` rule, float32 arithmetic)

    .. math::

        s = \\frac{\\max(x_{max}, 0) - \\min(x_{min}, 0)}{q_{max} - q_{min}},\\quad
        z = \\mathrm{clip}\\left(\\mathrm{round}\\left(q_{min} - \\frac{\\min(x_{min}, 0)}{s}
        \\right), q_{min}, q_{max}\\right)

    Plain text::

        scale = (max(x_max, 0) - min(x_min, 0)) / (qmax - qmin)
        zero_point = clip(round(qmin - min(x_min, 0) / scale), qmin, qmax)
        symmetric: scale = absmax / ((qmax - qmin) / 2), zero_point fixed

    See :class:`numbaq.QScheme` for zero and tiny ranges, and the ``torch`` rule.

    Examples
    --------
    >>> qp = qparams_from_minmax(np.float32(-1.0), np.float32(3.0), "ONNX")
    >>> float(qp.scale), int(qp.zero_point)
    (0.01568627543747425, 64)
    """
    sch = _scheme(scheme, overrides)
    lo, hi = np.asarray(min), np.asarray(max)
    if lo.dtype.kind not in "fiu" or hi.dtype.kind not in "fiu":
        raise TypeError(f"min and max must be real numbers, got dtypes {lo.dtype}, {hi.dtype}")
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    if lo.shape != hi.shape:
        raise ValueError(f"min and max must have one shape, got {lo.shape} and {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("min and max must be finite")
    if np.any(lo > hi):
        raise ValueError("min must be <= max everywhere")
    smin, smax = sch.scale_range
    scale = np.empty(lo.size, np.float32)
    zero_point = np.empty(lo.size, np.int32)
    kq._choose_qparams(
        np.ascontiguousarray(lo.reshape(-1)),
        np.ascontiguousarray(hi.reshape(-1)),
        smin,
        smax,
        sch.symmetric,
        sch.rule == "torch",
        sch.reciprocal,
        scale,
        zero_point,
    )
    _check_scales(scale, "x")
    return _make_qparams(sch, scale.reshape(lo.shape), zero_point.reshape(lo.shape))


def _make_qparams(sch: QScheme, scale: np.ndarray, zero_point: np.ndarray) -> QParams:
    qmin, qmax = sch.clamp_range
    return QParams(
        scale=scale,
        zero_point=zero_point,
        dtype=sch.dtype,
        qmin=qmin,
        qmax=qmax,
        granularity=sch.granularity,
        block_size=sch.block_size,
        scheme=sch,
    )


def choose_qparams(x, scheme=None, **overrides) -> QParams:
    """Choose scale and zero point for ``x`` from its runtime statistics.

    Parameters
    ----------
    x : (..., K) float array
        The values; float16 and float64 are converted to float32.
    scheme : QScheme or str, optional
        A :class:`QScheme` or a name from :mod:`numbaq.schemes`; defaults to
        ``PER_TOKEN_UINT8``.
    **overrides
        Fields of the scheme to replace, e.g. ``choose_qparams(x, dtype="int4")``.

    Returns
    -------
    QParams
        ``scale`` (float32) and ``zero_point`` (int32), one per group of the scheme's
        granularity.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or Inf.

    Notes
    -----
    ``minmax`` at the scheme's granularity, then :func:`qparams_from_minmax`::

        scale = (max(x_max, 0) - min(x_min, 0)) / (qmax - qmin)
        zero_point = clip(round(qmin - min(x_min, 0) / scale), qmin, qmax)

    Examples
    --------
    >>> qp = choose_qparams(np.array([[-1.0, 2.0], [0.5, 0.25]]), "PER_TOKEN_INT8")
    >>> qp.scale.tolist(), qp.zero_point.tolist()
    ([0.015748031437397003, 0.003937007859349251], [0, 0])
    """
    sch = _scheme(scheme, overrides)
    lo, hi = minmax(x, sch.granularity, sch.block_size)
    return qparams_from_minmax(lo, hi, sch)


# ----------------------------------------------------------------------------- quantize
def _check_qparams(qparams: QParams, param_shape, name: str = "x") -> None:
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
    x2d, by_column, shape = _layout(x, qparams.granularity, qparams.block_size)
    _check_qparams(qparams, shape)
    check_finite(x)
    reciprocal = bool(qparams.scheme is not None and qparams.scheme.reciprocal)
    q = np.empty(x2d.shape, qparams.storage)
    if by_column:
        kernel = _pick(kq._quantize_cols, kq._quantize_cols_par, x.size)
        scale = np.ascontiguousarray(qparams.scale)
        zp = np.ascontiguousarray(np.broadcast_to(qparams.zero_point, scale.shape), np.int32)
    else:
        kernel = _pick(kq._quantize_rows, kq._quantize_rows_par, x.size)
        scale = _row_params(qparams.scale, x2d.shape[0], np.float32)
        zp = _row_params(qparams.zero_point, x2d.shape[0], np.int32)
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
    q2d, by_column, shape = _layout(q, qparams.granularity, qparams.block_size, "q")
    _check_qparams(qparams, shape, "q")
    out = np.empty(q2d.shape, np.float32)
    if by_column:
        zp = np.ascontiguousarray(np.broadcast_to(qparams.zero_point, qparams.scale.shape))
        kq._dequantize_cols(q2d, np.ascontiguousarray(qparams.scale), zp, out)
    else:
        kernel = _pick(kq._dequantize_rows, kq._dequantize_rows_par, q.size)
        kernel(
            q2d,
            _row_params(qparams.scale, q2d.shape[0], np.float32),
            _row_params(qparams.zero_point, q2d.shape[0], np.int32),
            out,
        )
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
    sch = _scheme(scheme, overrides)
    if sch.granularity == "column":
        qparams = choose_qparams(x, sch)
        return quantize(x, qparams), qparams
    x = as_float32(x)
    x2d, _, shape = _layout(x, sch.granularity, sch.block_size)
    q = np.empty(x2d.shape, sch.storage)
    scale, zero_point = _dynamic_quantize_2d(x2d, sch, q)
    return q.reshape(x.shape), _make_qparams(sch, scale.reshape(shape), zero_point.reshape(shape))


def _dynamic_quantize_2d(x2d: np.ndarray, sch: QScheme, q: np.ndarray):
    """Fused dynamic quantization of the rows of ``x2d`` into ``q`` (``sch.storage``).

    Per tensor (one scale for all of ``x2d``) or one scale per row (``row`` and
    ``block`` granularities, after :func:`_layout`). Returns ``scale`` (R,) float32
    and ``zero_point`` (R,) int32, or 0-d arrays per tensor; raises on NaN/Inf.
    """
    n_rows = x2d.shape[0]
    smin, smax = sch.scale_range
    qmin, qmax = sch.clamp_range
    args = (x2d, smin, smax, qmin, qmax, sch.symmetric, sch.rule == "torch", sch.reciprocal, q)
    if sch.granularity == "tensor":
        kernel = _pick(kq._dynamic_quantize_tensor, kq._dynamic_quantize_tensor_par, x2d.size)
        scale, zero_point, n_bad = kernel(
            *args, np.empty(n_rows, np.float32), np.empty(n_rows, np.float32)
        )
        scale, zero_point = np.array(scale, np.float32), np.array(zero_point, np.int32)
    else:
        scale = np.empty(n_rows, np.float32)
        zero_point = np.empty(n_rows, np.int32)
        kernel = _pick(kq._dynamic_quantize_rows, kq._dynamic_quantize_rows_par, x2d.size)
        n_bad = kernel(*args, scale, zero_point)
    _raise_nonfinite("x", n_bad, "rows" if sch.granularity != "block" else "blocks")
    if not sch.symmetric:
        _check_scales(scale, "x")
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
        If ``x`` holds NaN or Inf.

    Notes
    -----
    ``x_hat = (clip(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale``.
    Inside the range, ``|x - x_hat| <= scale / 2``.

    Examples
    --------
    >>> fake_quantize(np.array([0.1, -0.7, 1.0]), "PER_TOKEN_INT8").astype(float).round(4).tolist()
    [0.1024, -0.7008, 1.0]
    """
    if isinstance(scheme, QParams):
        if overrides:
            raise TypeError("overrides apply to a scheme, not to fixed QParams")
        return dequantize(quantize(x, scheme), scheme)
    q, qparams = dynamic_quantize(x, scheme, **overrides)
    return dequantize(q, qparams)


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
