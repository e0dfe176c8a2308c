"""Public verbs of the quantization math: validate, convert, call a kernel.

Each stage is callable on its own so a lesson can print every intermediate::

    lo, hi = minmax(x, "row")                 # runtime statistics (here)
    qp = choose_qparams(x, PER_TOKEN_INT8)    # scale and zero point (here)
    q = quantize(x, qp)                       # float -> int (numbaq.codes)
    x_hat = dequantize(q, qp)                 # int -> float (numbaq.codes)

:func:`numbaq.codes.dynamic_quantize` fuses the three stages into one pass per row block.
This module also holds the input checks and layouts the other verbs share.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import config, schemes
from .checks import as_float32, check_scales, finite_float32, raise_nonfinite
from .kernels import quantize as kq
from .kernels import stats as ks
from .qparams import GRANULARITIES, QParams, QScheme

# ----------------------------------------------------------------------------- checks


# ----------------------------------------------------------------------------- layout
def group_layout(x: np.ndarray, granularity: str, block_size: int | None, name: str = "x"):
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


def pick_kernel(serial, parallel, n_elements: int):
    return parallel if config.use_parallel(n_elements) else serial


def row_params(param: np.ndarray, n_rows: int, dtype) -> np.ndarray:
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
        raise_nonfinite("x", n_bad, "tensor")
        return np.array(lo, np.float32), np.array(hi, np.float32)
    x2d, by_column, shape = group_layout(x, granularity, block_size)
    n = x2d.shape[1] if by_column else x2d.shape[0]
    lo = np.empty(n, np.float32)
    hi = np.empty(n, np.float32)
    if by_column:
        n_bad = ks._minmax_cols(x2d, lo, hi)
    else:
        n_bad = pick_kernel(ks._minmax_rows, ks._minmax_rows_par, x.size)(x2d, lo, hi)
    raise_nonfinite("x", n_bad, "columns" if by_column else "rows")
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
def scheme_with(scheme, overrides: dict) -> QScheme:
    base = schemes.resolve(scheme)
    if not overrides:
        return base
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(QScheme)})
    if unknown:
        raise TypeError(
            f"unknown scheme field(s) {unknown}; the fields a scheme can override are "
            f"{[f.name for f in dataclasses.fields(QScheme)]}"
        )
    return base.replace(**overrides)


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
    sch = scheme_with(scheme, overrides)
    lo, hi = finite_float32(min, "min and max"), finite_float32(max, "min and max")
    if lo.shape != hi.shape:
        raise ValueError(f"min and max must have one shape, got {lo.shape} and {hi.shape}")
    if np.any(lo > hi):
        raise ValueError("min must be <= max everywhere")
    return qparams_for_range(lo, hi, sch, "min and max")


def qparams_for_range(lo: np.ndarray, hi: np.ndarray, sch: QScheme, name: str) -> QParams:
    """:func:`qparams_from_minmax` on checked float32 ranges of one shape; an error for a
    range that overflows float32 names ``name`` (what the ranges were taken from)."""
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
    check_scales(scale, name)
    return make_qparams(sch, scale.reshape(lo.shape), zero_point.reshape(lo.shape))


def make_qparams(sch: QScheme, scale: np.ndarray, zero_point: np.ndarray) -> QParams:
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
    sch = scheme_with(scheme, overrides)
    lo, hi = minmax(x, sch.granularity, sch.block_size)
    return qparams_for_range(lo, hi, sch, "x")
