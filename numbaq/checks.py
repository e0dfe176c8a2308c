"""Input checks that verbs, layers and models share: arrays in, a clear error or the
array the kernels trust out.

Every shape and dtype a kernel relies on is checked in Python first (kernels check
nothing); every error names the argument and says how to fix it. NaN/Inf: the
quantizing kernels count them in the same pass that finds the range, and the callers
turn the count into :func:`raise_nonfinite`'s error; :func:`check_finite` is for the
paths whose kernels do not (fixed quantization parameters).
"""

from __future__ import annotations

import operator
import re

import numpy as np

from . import config
from .kernels import stats as ks

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest finite float32 (3.4028235e38)."""


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
    if arr.dtype != np.float32:  # np.errstate costs 2 us: only where a cast happens
        with np.errstate(over="ignore"):  # float64 beyond float32 becomes Inf, refused next
            arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    if ks._minmax_flat(arr)[2]:  # one exact pass over the bits, faster than np.isfinite
        raise ValueError(
            "bias contains NaN or Inf (after conversion to float32: float64 values beyond "
            "float32's range become Inf); clean or rescale it, e.g. np.nan_to_num(bias)"
        )
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


def finite_float32(value, name: str) -> np.ndarray:
    """Real ``value`` (any shape) as float32, or an error naming ``name``.

    For parameters given as numbers (ranges, epsilons): integers and floats are taken,
    booleans, complex numbers, strings and objects are refused, and so are NaN, Inf and
    float64 values beyond float32's range (they would become Inf).

    Parameters
    ----------
    value : array_like
        Real numbers.
    name : str
        How the error message calls ``value``.

    Returns
    -------
    float32 ndarray
        ``value`` converted, finite.

    Raises
    ------
    TypeError
        For a non-real dtype.
    ValueError
        For NaN, Inf or a value beyond float32's range.

    Examples
    --------
    >>> finite_float32([1, 2.5], "min").tolist()
    [1.0, 2.5]
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers (int or float), got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got NaN or Inf; clean {name} first")
    if arr.size and float(np.max(np.abs(arr), initial=0)) > FLOAT32_MAX:
        raise ValueError(
            f"{name} must lie within float32's range (|value| <= {FLOAT32_MAX:.7g}); rescale {name}"
        )
    return arr.astype(np.float32)


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    """``axis`` as an index in ``[0, ndim)``, or an error naming ``name``.

    Parameters
    ----------
    axis : int
        An axis of an array with ``ndim`` axes; negative counts from the end.
    ndim : int
        The array's number of axes.
    name : str
        How the error message calls ``axis``.

    Returns
    -------
    int
        The axis, non-negative.

    Raises
    ------
    TypeError
        If ``axis`` is not an integer (``bool`` and ``float`` included).
    ValueError
        If ``axis`` is outside ``[-ndim, ndim)``.

    Examples
    --------
    >>> check_axis(-1, 3)
    2
    """
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {axis!r}")
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {axis!r}") from None
    if not -ndim <= index < ndim:
        raise ValueError(
            f"{name}={index} is out of range for an array with {ndim} axes; "
            f"use an axis in [{-ndim}, {ndim - 1}]"
        )
    return index % ndim


def check_shape(arr: np.ndarray, shapes, name: str, what: str = "") -> None:
    """Refuse ``arr`` unless its shape is one of ``shapes``; never reshape silently.

    Parameters
    ----------
    arr : ndarray
        A parameter array (scales, zero points).
    shapes : sequence of tuple
        The shapes accepted.
    name : str
        How the error message calls ``arr``.
    what : str
        What the shapes mean, for the message (``"one per output channel"``).

    Raises
    ------
    ValueError
        Naming ``name``, the shapes accepted and the shape got.

    Examples
    --------
    >>> check_shape(np.ones(3), [(), (3,)], "scale")
    """
    if arr.shape in [tuple(s) for s in shapes]:
        return
    accepted = " or ".join(str(tuple(s)) for s in shapes)
    why = f" ({what})" if what else ""
    raise ValueError(
        f"{name} must have shape {accepted}{why}, got {arr.shape}; it is not reshaped for "
        f"you: a transposed or extra axis is a different layout"
    )


def output_overflow(name: str, fix: str) -> ValueError:
    """The ``ValueError`` for a result that overflows float32 from finite inputs.

    Parameters
    ----------
    name : str
        What overflowed, as the message calls it (``"the output"``).
    fix : str
        What to rescale (``"rescale x or the weights"``).

    Returns
    -------
    ValueError
        To raise.

    Examples
    --------
    >>> str(output_overflow("the output", "rescale x")).startswith("the output overflows")
    True
    """
    return ValueError(
        f"{name} overflows float32 (|value| > {FLOAT32_MAX:.7g}): no float32 can hold it, so "
        f"it would be Inf or NaN; {fix}"
    )


def all_finite(y: np.ndarray) -> bool:
    """Whether float32 ``y`` holds no NaN or Inf (one exact pass over the bits)."""
    flat = np.ascontiguousarray(y).reshape(-1)
    return not ks._minmax_flat(flat)[2]


def largest(values: np.ndarray) -> float:
    """The largest of float32 ``values`` (any shape, C-contiguous, no NaN), at the cost
    of a few hundred nanoseconds: a Python ``max`` for the few values of a small batch,
    an exact kernel pass for more (``ndarray.max`` costs a microsecond at any size)."""
    flat = values if values.ndim == 1 else values.reshape(-1)
    if flat.size <= 32:
        return flat.item() if flat.size == 1 else max(flat.tolist())
    return float(ks._minmax_flat(flat)[1])


def check_number(value, name: str, low: float, high: float, low_open: bool = True) -> float:
    """``value`` as a float in ``(low, high]`` (``[low, high]`` unless ``low_open``), or an
    error naming ``name``: booleans, strings and NaN are refused.

    Parameters
    ----------
    value : int or float
        A scalar setting (a constant, a percentile).
    name : str
        How the error message calls it.
    low, high : float
        The range it must lie in.
    low_open : bool
        Whether ``low`` itself is excluded.

    Returns
    -------
    float
        ``value``.

    Raises
    ------
    TypeError
        For a non-number (``bool`` included).
    ValueError
        Outside the range, or NaN.

    Examples
    --------
    >>> check_number(0.5, "alpha", 0, 1)
    0.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if np.iscomplexobj(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    above = number > low if low_open else number >= low
    if not (above and number <= high):  # NaN fails both
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return number


def check_output(y: np.ndarray, inputs, name: str, fix: str, layer=None) -> None:
    """Refuse a float32 result ``y`` that holds NaN or Inf although its ``inputs`` do not.

    For float products (``x @ W.T``) that overflow float32 from finite values: one exact
    pass over the bits of ``y`` (about a K-th of the product's work); the ``inputs`` are
    read only when ``y`` is not finite, to tell overflow from NaN or Inf that came in
    (which pass through, as in float arithmetic). Pass inputs as the caller got them:
    float64 values beyond float32's range are finite there, and refused here.

    Parameters
    ----------
    y : float32 ndarray
        The result.
    inputs : sequence of array_like
        What ``y`` was computed from (any real dtype).
    name : str
        What ``y`` is, for the message (``"the output x . weight^T + bias"``).
    fix : str
        What to rescale, for the message.
    layer : object, optional
        The layer that computed ``y``; its type's name starts the message.

    Raises
    ------
    ValueError
        :func:`output_overflow`'s, if ``y`` is not finite while every input is.

    Examples
    --------
    >>> check_output(np.ones(2, np.float32), [np.ones(2, np.float32)], "y", "rescale x")
    """
    if not ks._minmax_flat(y.ravel())[2]:  # the hot path: one pass, no message made
        return
    if not all(np.isfinite(np.asarray(a)).all() for a in inputs):
        return  # NaN or Inf came in
    raise output_overflow(f"{type(layer).__name__}: {name}" if layer is not None else name, fix)


def layer_error(layer, err: Exception, name: str = "x") -> Exception:
    """``err``, raised by a verb inside ``layer``, as the layer's own error.

    The same type, its message prefixed with the layer's class name (as every layer's
    errors are), and the verbs' name for their argument, ``x``, replaced by ``name``
    (``"input"`` for the recurrent layers, as their own messages call it).

    Parameters
    ----------
    layer : object
        The layer; its type's name starts the message.
    err : Exception
        The verb's error.
    name : str
        What the layer calls the argument the verb calls ``x``.

    Returns
    -------
    Exception
        To raise (``from None``).

    Examples
    --------
    >>> str(layer_error(object(), ValueError("rescale x"), "input"))
    'object: rescale input'
    """
    message = str(err)
    if name != "x":
        message = re.sub(r"(?<![\w.^])x(?![\w^])", name, message)
    return type(err)(f"{type(layer).__name__}: {message}")
