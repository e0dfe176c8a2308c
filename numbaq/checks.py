"""Input checks that verbs, layers and models share: arrays in, a clear error or the
array the kernels trust out.

Every shape and dtype a kernel relies on is checked in Python first (kernels check
nothing); every error names the argument and says how to fix it. NaN/Inf: the
quantizing kernels count them in the same pass that finds the range, and the callers
turn the count into :func:`raise_nonfinite`'s error; :func:`check_finite` is for the
paths whose kernels do not (fixed quantization parameters).
"""

from __future__ import annotations

import numpy as np

from . import config
from .kernels import stats as ks


def as_float32(x, name: str = "x") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ndarray, or raise a clear error.

    float16 and float64 are converted (a copy); so is a non-contiguous array.
    Integer, boolean and complex arrays, and empty arrays, are refused.

    Parameters
    ----------
    x : array_like
        A floating-point array of any shape.
    name : str
        How the error message calls ``x``.

    Returns
    -------
    float32 ndarray
        ``x`` itself when it is already C-contiguous float32, else a converted copy.

    Raises
    ------
    TypeError
        For a non-floating dtype.
    ValueError
        For an empty array.

    Examples
    --------
    >>> as_float32([1.0, 2.0]).dtype
    dtype('float32')
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


def raise_nonfinite(name: str, n_bad: int, what: str) -> None:
    """Raise the ``ValueError`` for ``n_bad`` ``what`` (rows, blocks) of ``name`` holding
    NaN or Inf, as a quantizing kernel counted them (nothing if 0)."""
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
        The values to check.
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


def check_scales(scale: np.ndarray, name: str) -> None:
    """Refuse runtime scales that overflowed float32 (the range of ``name`` is Inf)."""
    if not np.isfinite(scale.max()):
        raise ValueError(
            f"the range of {name} overflows float32 (max - min is Inf); "
            f"rescale {name} or use a symmetric scheme"
        )


def check_bias(bias, n: int) -> np.ndarray:
    """``bias`` as a C-contiguous (N,) float32 array without NaN/Inf, or a clear error.

    Parameters
    ----------
    bias : array_like
        A Linear's bias, one value per output feature.
    n : int
        The output features (N).

    Returns
    -------
    (N,) float32 ndarray
        The bias the epilogue adds.

    Raises
    ------
    TypeError
        For a non-float dtype.
    ValueError
        For a shape other than (N,), or NaN/Inf.

    Examples
    --------
    >>> check_bias([0.5, 1.0], 2).tolist()
    [0.5, 1.0]
    """
    arr = np.asarray(bias)
    if arr.dtype.kind != "f":
        raise TypeError(f"bias must be a float array, got {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"bias must have shape ({n},), got {arr.shape}")
    arr = np.ascontiguousarray(arr, np.float32)
    if ks._minmax_flat(arr)[2]:  # one exact pass over the bits, faster than np.isfinite
        raise ValueError("bias contains NaN or Inf; clean it first, e.g. np.nan_to_num(bias)")
    return arr


def layer_input(layer, x, k: int) -> np.ndarray:
    """``x`` as a float32 array whose last axis is ``k``, or an error naming the layer.

    Parameters
    ----------
    layer : object
        The layer called; its type's name starts the error message.
    x : array_like
        The layer's input, (..., K).
    k : int
        The layer's ``in_features``.

    Returns
    -------
    float32 ndarray
        ``x`` as :func:`as_float32` returns it.

    Raises
    ------
    TypeError, ValueError
        For a non-float ``x``, an empty one, or a last axis other than ``k``.

    Examples
    --------
    >>> layer_input(object(), [[1.0, 2.0]], 2).shape
    (1, 2)
    """
    try:
        x = as_float32(x)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{type(layer).__name__}: {err}") from None
    if x.ndim == 0 or x.shape[-1] != k:
        raise ValueError(
            f"{type(layer).__name__}: input must have shape (..., {k}) (in_features), got {x.shape}"
        )
    return x
