"""Branch-free float32 math that LLVM vectorizes: exp, sigmoid, tanh, erf, GELU.

libm's ``expf``/``tanhf``/``erff`` are calls that stop LLVM's loop vectorizer (2.3 ns a
value here); these are plain arithmetic on float32 plus one bitcast, and run at about
0.3-0.5 ns a value inside a loop. Accuracy is stated on each.
"""

from __future__ import annotations

import numpy as np

from ..config import jit
from .intrinsics import f32_from_bits

_F = np.float32
_ONE = _F(1.0)
_TWO = _F(2.0)
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)  # ln 2 split in two (Cody-Waite): n * _LN2_HI is exact
_LN2_LO = _F(-2.12194440e-4)
_EXP_MIN, _EXP_MAX = _F(-87.0), _F(88.0)  # exp stays a normal, finite float32
_HALF = _F(0.5)
_INV_SQRT2 = _F(0.7071067811865476)


@jit()
def _exp(x):
    """float32 ``exp``, at most 3 ulps off on [-87, 88] (0.4 on average; clamped outside),
    branch-free.

    ``exp(x) = 2**n * exp(r)`` with ``n = round(x / ln 2)``, ``r = x - n ln 2`` in
    [-ln2/2, ln2/2]; ``exp(r)`` by its Taylor polynomial to degree 6 (error below
    0.35**7 / 7! = 1.3e-7 relative); ``2**n`` built from its bits. Unlike libm's
    ``expf`` call, LLVM vectorizes it: 0.29 ns per value against 2.3 here.
    """
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.rint(x * _LOG2E)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = _F(1 / 720)
    p = p * r + _F(1 / 120)
    p = p * r + _F(1 / 24)
    p = p * r + _F(1 / 6)
    p = p * r + _F(0.5)
    p = p * r + _ONE
    p = p * r + _ONE
    return p * f32_from_bits(np.int32((np.int32(n) + 127) << 23))


@jit()
def _sigmoid(v):
    """``1 / (1 + exp(-v))``."""
    return _ONE / (_ONE + _exp(-v))


@jit()
def _tanh(v):
    """float32 ``tanh``, branch-free: the odd Taylor series to v**9 below |v| = 0.1875
    (error under 1e-10 relative), ``1 - 2 / (exp(2 v) + 1)`` above, where it no longer
    cancels badly (a few ulps at 0.1875, under one ulp past 1)."""
    v2 = v * v
    series = v + v * v2 * (
        _F(-1 / 3) + v2 * (_F(2 / 15) + v2 * (_F(-17 / 315) + v2 * _F(62 / 2835)))
    )
    formula = _ONE - _TWO / (_exp(_TWO * v) + _ONE)
    return series if abs(v) < _F(0.1875) else formula


@jit()
def _erf(x):
    """float32 ``erf``, absolute error below 5e-7: the formula's 1.5e-7 (Abramowitz and
    Stegun 7.1.26) plus float32 cancellation near 0, where ``1 - ...`` loses digits:
    ``erf(|x|) = 1 - t (a1 + t (a2 + ...)) exp(-x**2)`` with ``t = 1 / (1 + p |x|)``."""
    a = min(abs(x), _F(4.0))  # erf(4) rounds to 1 in float32; no denormals below
    t = _ONE / (_ONE + _F(0.3275911) * a)
    poly = t * (
        _F(0.254829592)
        + t
        * (_F(-0.284496736) + t * (_F(1.421413741) + t * (_F(-1.453152027) + t * _F(1.061405429))))
    )
    y = _ONE - poly * _exp(-a * a)
    return y if x >= 0 else -y


@jit()
def _gelu(x):
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))``, with :func:`_erf`."""
    return _HALF * x * (_ONE + _erf(x * _INV_SQRT2))


@jit()
def _gelu_array(x, out):
    """``out = gelu(x)`` over flat float32 arrays."""
    for i in range(x.size):
        out[i] = _gelu(x[i])
