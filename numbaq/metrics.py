"""Error metrics between a reference tensor and an approximation, in float64.

All take ``reference`` and ``approx`` of one shape (any float or int dtype).
"""

from __future__ import annotations

import numpy as np


def _pair(reference, approx):
    ref = np.asarray(reference, np.float64)
    out = np.asarray(approx, np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and approx {out.shape} differ in shape")
    if ref.size == 0:
        raise ValueError("reference and approx are empty")
    return ref, out


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
        In dB, computed in float64; ``inf`` when the two are equal.

    Raises
    ------
    ValueError
        If the shapes differ or the arrays are empty.

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
    ref, out = _pair(reference, approx)
    noise = np.sum((ref - out) ** 2)
    if noise == 0:
        return float("inf")
    return float(10.0 * np.log10(np.sum(ref**2) / noise))


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
    ValueError
        If the shapes differ or the arrays are empty.

    Examples
    --------
    >>> mse([1.0, 2.0], [1.0, 2.5])
    0.125
    """
    ref, out = _pair(reference, approx)
    return float(np.mean((ref - out) ** 2))


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
    ValueError
        If the shapes differ or the arrays are empty.

    Examples
    --------
    >>> max_abs_error([1.0, 2.0], [1.25, 2.0])
    0.25
    """
    ref, out = _pair(reference, approx)
    return float(np.max(np.abs(ref - out)))


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
    ValueError
        If the shapes differ or the arrays are empty.

    Examples
    --------
    >>> cosine([1.0, 0.0], [1.0, 1.0])
    0.7071067811865475
    """
    ref, out = _pair(reference, approx)
    ref, out = ref.reshape(-1), out.reshape(-1)
    norms = np.linalg.norm(ref) * np.linalg.norm(out)
    if norms == 0:
        return 1.0 if not ref.any() and not out.any() else 0.0
    return float(np.dot(ref, out) / norms)
