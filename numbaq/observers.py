"""Observers: collect activation statistics during calibration, then fix the qparams.

Static quantization chooses one activation range ahead of time from calibration data;
an observer sees the calibration batches (``update``) and turns what it saw into
per-tensor :class:`QParams` (``qparams``) under a scheme (default ``ONNX``: uint8,
asymmetric, float32 arithmetic). The ranges they choose:

``MinMaxObserver``
    ``[min over all batches, max over all batches]``.
``MovingAverageMinMaxObserver``
    ``min <- min + c (batch_min - min)`` (and max alike), ``c = averaging_constant``.
``HistogramObserver``
    A histogram of the values; the range ``[percentile(100 - p), percentile(p)]``.
``MSEObserver``
    The clip range ``[f * min, f * max]`` whose quantization error, measured on the
    histogram, is smallest over a grid of fractions ``f``.
"""

from __future__ import annotations

import numpy as np

from . import schemes
from .checks import check_number
from .ops import as_float32, minmax, qparams_for_range
from .qparams import QParams


class Observer:
    """Base: ``update(x)`` with each calibration batch, then ``qparams()``.

    Parameters
    ----------
    scheme : QScheme or str, optional
        Activation dtype and symmetry of the qparams (default ``ONNX``: uint8,
        asymmetric); the granularity is always per tensor.

    Examples
    --------
    >>> obs = MinMaxObserver("PER_TOKEN_INT8").update(np.array([-2.0, 1.0]))
    >>> isinstance(obs, Observer), bool(obs.qparams().scale == np.float32(2.0 / 127))
    (True, True)
    """

    def __init__(self, scheme=None):
        self.scheme = schemes.resolve(scheme, default=schemes.OBSERVER_DEFAULT).replace(
            granularity="tensor"
        )
        self.batches = 0

    def update(self, x) -> Observer:
        raise NotImplementedError  # pragma: no cover

    def range(self) -> tuple[float, float]:
        """``(min, max)`` the observer chose."""
        raise NotImplementedError  # pragma: no cover

    def qparams(self) -> QParams:
        """Per-tensor qparams for the chosen range (``qparams_from_minmax``)."""
        if not self.batches:
            raise ValueError(f"{type(self).__name__}: no batches seen; call update(x) first")
        try:
            lo, hi = self.range()
            return _qparams(lo, hi, self.scheme)
        except ValueError as err:  # the range overflows float32 (max - min is Inf)
            raise ValueError(f"{type(self).__name__}: {err}") from None

    def __repr__(self) -> str:
        if not self.batches:
            return f"{type(self).__name__}(no batches yet)"
        lo, hi = self.range()
        return (
            f"{type(self).__name__}({self.batches} batches, range [{lo:.6g}, {hi:.6g}], "
            f"{self.scheme.dtype})"
        )


class MinMaxObserver(Observer):
    """The running minimum and maximum of everything seen.

    Parameters
    ----------
    scheme : QScheme or str, optional
        Activation dtype and symmetry of the qparams (default ``ONNX``: uint8,
        asymmetric); the granularity is always per tensor.

    Examples
    --------
    >>> obs = MinMaxObserver().update(np.array([-1.0, 2.0])).update(np.array([3.0]))
    >>> obs.range()
    (-1.0, 3.0)
    """

    def update(self, x) -> MinMaxObserver:
        lo, hi = (float(v) for v in minmax(x))
        self.lo = lo if not self.batches else min(self.lo, lo)
        self.hi = hi if not self.batches else max(self.hi, hi)
        self.batches += 1
        return self

    def range(self):
        return self.lo, self.hi


class MovingAverageMinMaxObserver(Observer):
    """An exponential moving average of each batch's min and max (as PyTorch's).

    Parameters
    ----------
    scheme : QScheme or str, optional
        Activation dtype and symmetry of the qparams (default ``ONNX``: uint8,
        asymmetric); the granularity is always per tensor.
    averaging_constant : float
        Weight of each new batch: ``min = (1 - c) * min + c * batch_min``; the first
        batch sets the range.

    Examples
    --------
    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> obs.update(np.array([-1.0, 1.0])).update(np.array([-3.0, 3.0])).range()
    (-2.0, 2.0)
    """

    def __init__(self, scheme=None, averaging_constant: float = 0.01):
        super().__init__(scheme)
        self.c = check_number(averaging_constant, "averaging_constant", 0, 1)

    def update(self, x) -> MovingAverageMinMaxObserver:
        lo, hi = (float(v) for v in minmax(x))
        if not self.batches:
            self.lo, self.hi = lo, hi
        else:
            self.lo += self.c * (lo - self.lo)
            self.hi += self.c * (hi - self.hi)
        self.batches += 1
        return self

    def range(self):
        return self.lo, self.hi

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", c={self.c})"


class HistogramObserver(Observer):
    """A histogram of the values (``bins`` over a range that grows as needed); the range
    keeps the central ``percentile`` percent, clipping the tails.

    Parameters
    ----------
    scheme : QScheme or str, optional
        Activation dtype and symmetry of the qparams (default ``ONNX``: uint8,
        asymmetric); the granularity is always per tensor.
    bins : int
        Histogram bins.
    percentile : float
        Percent of the observed values the range keeps, in (0, 100].

    Examples
    --------
    >>> x = np.concatenate([np.linspace(-1, 1, 9999), [50.0]])  # one outlier
    >>> lo, hi = HistogramObserver(percentile=99.9).update(x).range()
    >>> hi < 2.0  # the outlier is clipped
    True
    """

    def __init__(self, scheme=None, bins: int = 2048, percentile: float = 99.99):
        super().__init__(scheme)
        percentile = check_number(percentile, "percentile", 50, 100)
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"bins must be an int >= 1 (e.g. 2048), got {bins!r}")
        self.bins, self.percentile = bins, percentile
        self.counts = np.zeros(bins, np.int64)
        self.edges: np.ndarray | None = None

    def update(self, x) -> HistogramObserver:
        x = as_float32(x).reshape(-1)
        lo, hi = (float(v) for v in minmax(x))
        if self.edges is None:
            width = max(hi - lo, 1e-12)
            self.edges = np.linspace(lo, lo + width, self.bins + 1)
        elif lo < self.edges[0] or hi > self.edges[-1]:
            self._grow(min(lo, self.edges[0]), max(hi, self.edges[-1]))
        self.counts += np.histogram(x, self.edges)[0]
        self.batches += 1
        return self

    def _grow(self, lo: float, hi: float):
        """Re-bin the counts onto a wider range (each old bin's count at its center)."""
        centers = (self.edges[:-1] + self.edges[1:]) / 2
        self.edges = np.linspace(lo, hi, self.bins + 1)
        self.counts = np.histogram(centers, self.edges, weights=self.counts)[0].astype(np.int64)

    def quantile(self, q: float) -> float:
        """The value below which a fraction ``q`` of the observed mass lies."""
        cdf = np.cumsum(self.counts) / self.counts.sum()
        i = int(np.searchsorted(cdf, q))
        return float(self.edges[min(i + 1, self.bins)] if q >= 0.5 else self.edges[i])

    def range(self):
        tail = (100 - self.percentile) / 100
        return min(self.quantile(tail), 0.0), max(self.quantile(1 - tail), 0.0)


class MSEObserver(HistogramObserver):
    """The clip range ``f * [min, max]`` with the smallest quantization MSE on the
    histogram, over ``f`` in ``fractions`` (default 0.10, 0.11, ..., 1.00).

    Parameters
    ----------
    scheme : QScheme or str, optional
        Activation dtype and symmetry of the qparams (default ``ONNX``: uint8,
        asymmetric); the granularity is always per tensor.
    bins : int
        Histogram bins.
    fractions : sequence of float, optional
        Candidate fractions ``f`` of the observed range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.standard_normal(10000), [40.0]])
    >>> lo, hi = MSEObserver().update(x).range()
    >>> hi < 40.0
    True
    """

    def __init__(self, scheme=None, bins: int = 2048, fractions=None):
        super().__init__(scheme, bins, percentile=100)
        fractions = np.linspace(0.1, 1.0, 91) if fractions is None else fractions
        arr = np.asarray(fractions)
        if arr.dtype.kind not in "iuf" or arr.ndim > 1:
            raise TypeError(
                f"fractions must be a list of numbers in (0, 1], got {type(fractions).__name__} "
                f"of dtype {arr.dtype} and shape {arr.shape}"
            )
        self.fractions = arr.astype(np.float64).reshape(-1)
        if not self.fractions.size or not np.all((self.fractions > 0) & (self.fractions <= 1)):
            raise ValueError("fractions must be a non-empty list of numbers in (0, 1]")

    def mse(self, lo: float, hi: float) -> float:
        """Expected squared error of quantizing the histogram with the range [lo, hi]."""
        centers = ((self.edges[:-1] + self.edges[1:]) / 2).astype(np.float32)
        qp = _qparams(min(lo, 0), max(hi, 0), self.scheme)
        scale, zp = np.float32(qp.scale), np.float32(qp.zero_point)
        q = np.clip(np.rint(centers / scale) + zp, qp.qmin, qp.qmax)
        err = (q - zp) * scale - centers
        return float((self.counts * err.astype(np.float64) ** 2).sum() / self.counts.sum())

    def range(self):
        lo, hi = min(float(self.edges[0]), 0.0), max(float(self.edges[-1]), 0.0)
        errors = [self.mse(f * lo, f * hi) for f in self.fractions]
        f = float(self.fractions[int(np.argmin(errors))])
        return f * lo, f * hi


def _qparams(lo: float, hi: float, scheme) -> QParams:
    """Per-tensor qparams for an observed range; an error names the calibration data."""
    lo, hi = np.array(lo, np.float32), np.array(hi, np.float32)
    return qparams_for_range(lo, hi, scheme, "the calibration data")


OBSERVERS = {
    "minmax": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
    "mse": MSEObserver,
}
