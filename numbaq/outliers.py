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

from .layers import Linear, Module
from .layers.linear import _input
from .matmul import ACTIVATIONS, _bias, _linear_2d, quantize_weight
from .ops import DEFAULT_SCHEME, minmax


def smoothing_factors(weight, act_absmax=None, alpha: float = 0.5) -> np.ndarray:
    """SmoothQuant's per-input-channel factors ``s`` (K,) float32.

    ``weight`` (N, K); ``act_absmax`` (K,) the largest ``|x_j|`` seen in calibration.
    """
    w_absmax = np.maximum(np.abs(np.asarray(weight, np.float64)).max(axis=0), 1e-8)
    if act_absmax is None:
        s = w_absmax ** -(1 - alpha)
        s /= np.exp(np.log(s).mean())  # geometric mean 1
    else:
        a = np.maximum(np.asarray(act_absmax, np.float64), 1e-8)
        s = a**alpha / w_absmax ** (1 - alpha)
    return s.astype(np.float32)


class SmoothQuantLinear(Module):
    """A dynamic int8 Linear with SmoothQuant smoothing folded into its weights."""

    quantized = True

    def __init__(
        self,
        linear: Linear,
        act_absmax=None,
        alpha: float = 0.5,
        scheme=None,
        per_channel: bool = True,
    ):
        super().__init__()
        self.alpha = alpha
        s = smoothing_factors(linear.weight, act_absmax, alpha)
        self.qweight = quantize_weight(linear.weight * s, per_channel=per_channel)
        self.scheme = DEFAULT_SCHEME if scheme is None else scheme
        self._param("inv_smoothing", (1 / s).astype(np.float32))
        self._param("weight_int8", self.qweight.q)
        self._param("weight_scale", self.qweight.scale)
        self._param("bias", None if linear.bias is None else linear.bias)
        self.trace_log = None

    def forward(self, x):
        n, k = self.qweight.shape
        x = _input(self, x, k)
        x2d = np.ascontiguousarray(x.reshape(-1, k) * self.inv_smoothing)
        bias = self.qweight.zero_bias if self.bias is None else self.bias
        y, scale, zero_point = _linear_2d(x2d, self.qweight, bias, self.scheme, 0)
        if self.trace_log is not None:
            self.trace_log.append({"scale": scale, "zero_point": zero_point})
        return y.reshape(x.shape[:-1] + (n,))

    def extra_repr(self) -> str:
        return f"{self.qweight.shape[1]}, {self.qweight.shape[0]}, alpha={self.alpha}"


class LLMInt8Linear(Module):
    """A dynamic int8 Linear whose outlier input channels run in float32."""

    quantized = True

    def __init__(
        self, linear: Linear, threshold: float = 6.0, scheme=None, per_channel: bool = True
    ):
        super().__init__()
        self.threshold = float(threshold)
        self.qweight = quantize_weight(linear.weight, per_channel=per_channel)
        self.scheme = DEFAULT_SCHEME if scheme is None else scheme
        self._param("weight", linear.weight)
        self._param("weight_int8", self.qweight.q)
        self._param("weight_scale", self.qweight.scale)
        self._param(
            "bias", None if linear.bias is None else _bias(linear.bias, linear.weight.shape[0])
        )
        self.outlier_channels: np.ndarray = np.zeros(0, np.int64)
        self.trace_log = None

    def forward(self, x):
        n, k = self.qweight.shape
        x = _input(self, x, k)
        x2d = x.reshape(-1, k)
        lo, hi = minmax(x2d, "column")
        outliers = np.flatnonzero(np.maximum(-lo, hi) > self.threshold)
        self.outlier_channels = outliers
        bias = self.qweight.zero_bias if self.bias is None else self.bias
        inliers = x2d
        if outliers.size:
            inliers = x2d.copy()
            inliers[:, outliers] = 0
        y, scale, zero_point = _linear_2d(
            np.ascontiguousarray(inliers), self.qweight, bias, self.scheme, ACTIVATIONS[None]
        )
        if outliers.size:
            y += x2d[:, outliers] @ self.weight[:, outliers].T
        if self.trace_log is not None:
            self.trace_log.append(
                {"scale": scale, "zero_point": zero_point, "outlier_channels": outliers}
            )
        return y.reshape(x.shape[:-1] + (n,))

    def extra_repr(self) -> str:
        return f"{self.qweight.shape[1]}, {self.qweight.shape[0]}, threshold={self.threshold}"
