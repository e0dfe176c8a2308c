"""Outlier-aware dynamic quantization: SmoothQuant-style smoothing, LLM.int8-style split.

A few input channels with activations 20x the rest stretch every per-token range, and
the other channels lose most of their codes. Two answers, both named schemes of
:func:`numbaq.quantize_dynamic` (``scheme="SMOOTHQUANT"`` or ``"LLM_INT8"``):

``SmoothQuantLinear``
    Per input channel ``j`` a factor ``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)``
    moves range from the activations into the weights: ``x W^T = (x / s)(W s)^T``. ``W s``
    is quantized once (int8 per channel); at runtime ``x / s`` is quantized per token.
    ``max|X_j|`` comes from a few calibration batches; without them only the weights
    are balanced (``s_j = max|W_j|**-(1 - alpha)``, normalised), which does not help
    activation outliers. The ``1 / s`` multiply is one elementwise pass here; a model
    could fold it into the layer before (a LayerNorm's or Linear's weights).
``LLMInt8Linear``
    Per call, the input channels whose ``max |x_j|`` passes ``threshold`` run in float32
    (``x[:, J] W[:, J]^T``); the rest run through the int8 GEMM with the outlier channels
    zeroed. It keeps the float weights for that (4x the int8 memory).
"""

from __future__ import annotations

import numpy as np

from . import schemes
from .checks import all_finite, layer_error, output_overflow
from .layers import Linear, QuantLinearBase
from .layers.linear import activate, check_float_output
from .matmul import ACTIVATIONS, check_linear_scheme, linear_2d, quantize_weight
from .ops import minmax


def _linear(owner: str, linear) -> Linear:
    if not isinstance(linear, Linear):
        raise TypeError(f"{owner}: linear must be a numbaq Linear, got {type(linear).__name__}")
    return linear


def _scheme(owner: str, scheme, qweight):
    sch = schemes.resolve(scheme)
    check_linear_scheme(sch, qweight, owner)
    return sch


def smoothing_factors(weight, act_absmax=None, alpha: float = 0.5) -> np.ndarray:
    """SmoothQuant's per-input-channel factors ``s`` (K,) float32.

    ``x W^T = (x / s)(W s)^T``: dividing the activations by ``s`` and multiplying the
    weights' columns by it moves the activations' outliers into the weights, where per
    channel scales absorb them.

    Parameters
    ----------
    weight : (N, K) float array
        The Linear's weights.
    act_absmax : (K,) float array, optional
        The largest ``|x_j|`` of each input channel seen in calibration. Without it
        (weights only), ``s = max|W_j|^-(1 - alpha)`` normalised to geometric mean 1.
    alpha : float
        Migration strength in [0, 1]: ``s_j = max|x_j|^alpha / max|W_j|^(1 - alpha)``.

    Returns
    -------
    (K,) float32 ndarray
        The factors ``s``.

    Raises
    ------
    ValueError
        If ``alpha`` is outside [0, 1] or ``act_absmax`` does not fit ``weight``.

    Examples
    --------
    >>> w = np.ones((2, 2))
    >>> smoothing_factors(w, act_absmax=[4.0, 1.0], alpha=0.5).tolist()
    [2.0, 1.0]
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha (migration strength) must be in [0, 1], got {alpha!r}")
    weight = np.asarray(weight, np.float64)
    w_absmax = np.maximum(np.abs(weight).max(axis=0), 1e-8)
    if act_absmax is not None:
        act_absmax = np.asarray(act_absmax)
        if act_absmax.dtype.kind not in "fiu":
            raise TypeError(f"act_absmax must be a float array, got dtype {act_absmax.dtype}")
        act_absmax = act_absmax.astype(np.float64)
        if act_absmax.shape != w_absmax.shape or not np.isfinite(act_absmax).all():
            raise ValueError(
                f"act_absmax must be finite with one value per input channel "
                f"{w_absmax.shape}, got shape {act_absmax.shape}"
            )
    if act_absmax is None:
        s = w_absmax ** -(1 - alpha)
        s /= np.exp(np.log(s).mean())  # geometric mean 1
    else:
        a = np.maximum(np.asarray(act_absmax, np.float64), 1e-8)
        s = a**alpha / w_absmax ** (1 - alpha)
    return s.astype(np.float32)


class SmoothQuantLinear(QuantLinearBase):
    """A dynamic int8 Linear with SmoothQuant smoothing folded into its weights.

    Parameters
    ----------
    linear : Linear
        The float layer (left unchanged).
    act_absmax : (K,) float array, optional
        Per input channel ``max |x|`` from calibration; see :func:`smoothing_factors`.
    alpha : float
        Migration strength in [0, 1].
    scheme : QScheme or str, optional
        Activation scheme of the smoothed input (default ``PER_TOKEN_UINT8``).
    per_channel : bool
        One weight scale per output channel; else one per tensor.

    Examples
    --------
    >>> import numbaq
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((8, 16)).astype(np.float32)
    >>> x = rng.standard_normal((4, 16)).astype(np.float32); x[:, 3] *= 50  # an outlier channel
    >>> layer = SmoothQuantLinear(numbaq.Linear(w), act_absmax=np.abs(x).max(axis=0))
    >>> numbaq.metrics.sqnr(x @ w.T, layer(x)) > 30
    True
    """

    def __init__(
        self,
        linear: Linear,
        act_absmax=None,
        alpha: float = 0.5,
        scheme=None,
        per_channel: bool = True,
    ):
        super().__init__()
        linear = _linear("SmoothQuantLinear", linear)
        self.activation = getattr(linear, "activation", None)  # applied in the epilogue
        self.alpha = alpha
        s = smoothing_factors(linear.weight, act_absmax, alpha)
        qweight = quantize_weight(linear.weight * s, per_channel=per_channel)
        self.scheme = _scheme("SmoothQuantLinear", scheme, qweight)
        self._param("inv_smoothing", (1 / s).astype(np.float32))
        self._set_weights(qweight, linear.bias)

    def _product(self, x2d, bias):
        """``(x / s) (W s)^T + b`` through int8, with runtime activation scales."""
        smoothed = np.ascontiguousarray(x2d * self.inv_smoothing)
        try:
            return super()._product(smoothed, bias)
        except ValueError:
            # NaN/Inf the product's quantizer counted: from x, or from x / s overflowing
            if all_finite(smoothed) or not all_finite(x2d):
                raise
        raise output_overflow(
            "SmoothQuantLinear: the smoothed input x / s",
            "x divided by the smoothing factors s (some below 1) passes float32's largest "
            "value: rescale x",
        )

    def extra_repr(self) -> str:
        return f"{self.qweight.shape[1]}, {self.qweight.shape[0]}, alpha={self.alpha}"


class LLMInt8Linear(QuantLinearBase):
    """A dynamic int8 Linear whose outlier input channels run in float32.

    At every call, the input channels whose ``max |x|`` exceeds ``threshold`` are taken out
    of the int8 product and multiplied in float32 (LLM.int8()'s decomposition); their
    indices are kept in ``outlier_channels``.

    Parameters
    ----------
    linear : Linear
        The float layer (left unchanged; its float weights are kept for the outliers).
    threshold : float
        Channels with ``max |x| > threshold`` in the current input run in float.
    scheme : QScheme or str, optional
        Activation scheme of the other channels (default ``PER_TOKEN_UINT8``).
    per_channel : bool
        One weight scale per output channel; else one per tensor.

    Examples
    --------
    >>> import numbaq
    >>> w = np.eye(3, dtype=np.float32)
    >>> layer = LLMInt8Linear(numbaq.Linear(w), threshold=6.0)
    >>> y = layer(np.array([[0.5, 100.0, -0.25]], np.float32))
    >>> layer.outlier_channels.tolist(), float(y[0, 1])
    ([1], 100.0)
    """

    def __init__(
        self, linear: Linear, threshold: float = 6.0, scheme=None, per_channel: bool = True
    ):
        super().__init__()
        linear = _linear("LLMInt8Linear", linear)
        self.activation = getattr(linear, "activation", None)  # after the two parts add up
        if not (isinstance(threshold, (int, float, np.number)) and threshold > 0):
            raise ValueError(f"LLMInt8Linear: threshold must be a number > 0, got {threshold!r}")
        self.threshold = float(threshold)
        if not np.isfinite(self.threshold):
            raise ValueError("LLMInt8Linear: threshold must be finite")
        qweight = quantize_weight(linear.weight, per_channel=per_channel)
        self.scheme = _scheme("LLMInt8Linear", scheme, qweight)
        self._param("weight", linear.weight)
        self._set_weights(qweight, linear.bias)
        self.outlier_channels: np.ndarray = np.zeros(0, np.int64)

    def _product(self, x2d, bias):
        """The int8 product of the inlier channels plus the float product of the outliers
        (channels whose ``max |x|`` passes ``threshold`` in this input)."""
        try:
            lo, hi = minmax(x2d, "column")
        except ValueError as err:
            raise layer_error(self, err) from None
        outliers = np.flatnonzero(np.maximum(-lo, hi) > self.threshold)
        self.outlier_channels = outliers
        inliers = x2d
        if outliers.size:
            inliers = x2d.copy()
            inliers[:, outliers] = 0
        act = ACTIVATIONS[None if outliers.size else self.activation]  # fused when int8 only
        try:
            y, scale, zero_point = linear_2d(
                np.ascontiguousarray(inliers), self.qweight, bias, self.scheme, act
            )
        except ValueError as err:
            raise layer_error(self, err) from None
        if outliers.size:
            y += x2d[:, outliers] @ self.weight[:, outliers].T
            check_float_output(self, y, x2d, self.weight)  # the int8 part was checked
        if outliers.size and self.activation is not None:
            y = activate(np.ascontiguousarray(y), self.activation)
        return y, {"scale": scale, "zero_point": zero_point, "outlier_channels": outliers}

    def extra_repr(self) -> str:
        return f"{self.qweight.shape[1]}, {self.qweight.shape[0]}, threshold={self.threshold}"
