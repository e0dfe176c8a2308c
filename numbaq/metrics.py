"""Error metrics between a reference tensor and an approximation, in float64.

All take ``reference`` and ``approx`` of one shape (any float or int dtype).
"""

from __future__ import annotations

import numpy as np


def _real(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be real numbers (a float, int or bool array), got dtype {arr.dtype}"
        )
    return arr.astype(np.float64, copy=False)


def _pair(reference, approx):
    ref, out = _real(reference, "reference"), _real(approx, "approx")
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and approx {out.shape} differ in shape")
    if ref.size == 0:
        raise ValueError("reference and approx are empty")
    for name, arr in (("reference", ref), ("approx", out)):
        if not np.isfinite(arr).all():
            raise ValueError(
                f"{name} contains NaN or Inf: no error metric is defined for it; "
                f"clean it first, e.g. np.nan_to_num({name})"
            )
    return ref, out


def _scaled(*arrays):
    """``arrays`` times one power of two ``2**-e`` (exact) that brings their largest
    magnitude near 1, and ``e``: the metrics' sums cannot overflow float64 on them."""
    top = max(float(np.max(np.abs(a))) for a in arrays)
    e = int(np.frexp(top)[1]) if top else 0
    return (*(np.ldexp(a, -e) for a in arrays), e)


def _finite(value: float, what: str) -> float:
    if not np.isfinite(value):
        raise ValueError(
            f"the {what} of reference and approx overflows float64 (> 1.8e308); rescale both"
        )
    return float(value)


def sqnr(reference, approx) -> float:
    """Signal-to-quantization-noise ratio in dB.

    Parameters
    ----------
    reference : array_like
        The exact values, any float or int dtype.
    approx : array_like
        The approximation, of the same shape.

    Returns
    -------
    float
        In dB, computed in float64; ``inf`` when the two are equal, ``-inf`` when
        ``reference`` is all zero and ``approx`` is not.

    Raises
    ------
    TypeError
        If an array is not of real numbers (complex, strings, objects).
    ValueError
        If the shapes differ, the arrays are empty or hold NaN or Inf, or the result
        overflows float64.

    Notes
    -----
    .. math:: \\mathrm{SQNR} = 10 \\log_{10} \\frac{\\sum r^2}{\\sum (r - a)^2}

    Plain text: ``sqnr = 10 * log10(sum(ref**2) / sum((ref - approx)**2))``.
    ``inf`` when the two are equal. Each bit of a uniform quantizer adds about 6 dB.

    Examples
    --------
    >>> round(sqnr([1.0, 2.0], [1.0, 2.1]), 2)
    26.99
    """
    # scaled by a power of two: the ratio is the same, and neither sum can overflow
    # (values near float64's largest) nor underflow to 0 (tiny values)
    ref, out, _ = _scaled(*_pair(reference, approx))
    noise, signal = np.sum((ref - out) ** 2), np.sum(ref**2)
    if noise == 0:
        return float("inf")
    if signal == 0:  # an all-zero reference: no signal, only noise
        return float("-inf")
    return float(10.0 * np.log10(signal / noise))


def mse(reference, approx) -> float:
    """Mean squared error, ``mean((ref - approx)**2)``.

    Parameters
    ----------
    reference : array_like
        The exact values, any float or int dtype.
    approx : array_like
        The approximation, of the same shape.

    Returns
    -------
    float
        Computed in float64.

    Raises
    ------
    TypeError
        If an array is not of real numbers (complex, strings, objects).
    ValueError
        If the shapes differ, the arrays are empty or hold NaN or Inf, or the result
        overflows float64.

    Examples
    --------
    >>> mse([1.0, 2.0], [1.0, 2.5])
    0.125
    """
    ref, out = _pair(reference, approx)
    with np.errstate(over="ignore", invalid="ignore"):
        value = np.mean((ref - out) ** 2)
    if not np.isfinite(value):  # values near float64's max: the mean may still fit
        ref, out, e = _scaled(ref, out)
        with np.errstate(over="ignore"):
            value = np.ldexp(np.mean((ref - out) ** 2), 2 * e)
    return _finite(value, "mean squared error")


def max_abs_error(reference, approx) -> float:
    """Largest elementwise error, ``max(|ref - approx|)``.

    Parameters
    ----------
    reference : array_like
        The exact values, any float or int dtype.
    approx : array_like
        The approximation, of the same shape.

    Returns
    -------
    float
        Computed in float64.

    Raises
    ------
    TypeError
        If an array is not of real numbers (complex, strings, objects).
    ValueError
        If the shapes differ, the arrays are empty or hold NaN or Inf, or the result
        overflows float64.

    Examples
    --------
    >>> max_abs_error([1.0, 2.0], [1.25, 2.0])
    0.25
    """
    ref, out = _pair(reference, approx)
    with np.errstate(over="ignore"):
        return _finite(np.max(np.abs(ref - out)), "largest difference")


def cosine(reference, approx) -> float:
    """Cosine similarity of the flattened tensors, ``<r, a> / (|r| |a|)``.

    Returns 1.0 when both are all-zero, 0.0 when exactly one is.

    Parameters
    ----------
    reference : array_like
        The exact values, any float or int dtype.
    approx : array_like
        The approximation, of the same shape.

    Returns
    -------
    float
        In [-1, 1], computed in float64.

    Raises
    ------
    TypeError
        If an array is not of real numbers (complex, strings, objects).
    ValueError
        If the shapes differ, the arrays are empty or hold NaN or Inf, or the result
        overflows float64.

    Examples
    --------
    >>> cosine([1.0, 0.0], [1.0, 1.0])
    0.7071067811865475
    """
    ref, out = _pair(reference, approx)
    # each scaled by a power of two: the cosine is the same, and the norms cannot
    # overflow (values near float64's largest) nor underflow to 0 (tiny values)
    ref, out = _scaled(ref.reshape(-1))[0], _scaled(out.reshape(-1))[0]
    norms = np.linalg.norm(ref) * np.linalg.norm(out)
    if norms == 0:
        return 1.0 if not ref.any() and not out.any() else 0.0
    return float(np.dot(ref, out) / norms)
