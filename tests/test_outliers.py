"""Outlier-aware schemes: SmoothQuant-style smoothing and the LLM.int8-style split."""

import numpy as np
import pytest

import numbaq as nq
from numbaq.outliers import LLMInt8Linear, SmoothQuantLinear, smoothing_factors


def _case(seed=0, m=64, k=256, n=128):
    rng = np.random.default_rng(seed)
    channels = rng.choice(k, k // 100 + 1, replace=False)

    def batch():
        x = rng.standard_normal((m, k)).astype(np.float32)
        x[:, channels] *= 20
        return x

    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    return nq.Linear(w, np.zeros(n, np.float32)), batch(), [batch() for _ in range(3)], channels


def test_smoothing_is_exact_in_float():
    layer, x, calib, _ = _case()
    s = smoothing_factors(layer.weight, np.abs(np.concatenate(calib)).max(axis=0))
    np.testing.assert_allclose(
        (x / s) @ (layer.weight * s).T, x @ layer.weight.T, rtol=1e-4, atol=1e-4
    )


def test_outlier_schemes_beat_plain_per_token():
    layer, x, calib, channels = _case()
    exact = x.astype(np.float64) @ layer.weight.T.astype(np.float64)
    sqnr = lambda model: nq.metrics.sqnr(exact, model(x))  # noqa: E731
    plain = sqnr(nq.quantize_dynamic(layer))
    smooth = nq.quantize_dynamic(layer, scheme="SMOOTHQUANT", calibration=calib)
    llm = nq.quantize_dynamic(layer, scheme="LLM_INT8")
    assert isinstance(smooth, SmoothQuantLinear) and isinstance(llm, LLMInt8Linear)
    assert sqnr(smooth) > plain + 5
    assert sqnr(llm) > plain + 10
    assert sorted(llm.outlier_channels) == sorted(channels)


def test_llm_int8_without_outliers_is_the_plain_int8_layer(gemm_path):
    layer, _, _, _ = _case()
    x = np.random.default_rng(9).normal(size=(8, 256)).astype(np.float32)
    llm = nq.quantize_dynamic(layer, scheme="llm_int8")
    np.testing.assert_array_equal(llm(x), nq.quantize_dynamic(layer)(x))
    assert llm.outlier_channels.size == 0


@pytest.mark.parametrize("scheme", ["SMOOTHQUANT", "LLM_INT8"])
def test_outlier_schemes_in_a_model(scheme):
    layer, x, calib, _ = _case()
    model = nq.Sequential(layer, nq.ReLU(), nq.Linear(np.eye(128, dtype=np.float32)))
    q = nq.quantize_dynamic(
        model,
        scheme=scheme,
        exclude=["2"],
        calibration=[c for c in calib] if scheme == "SMOOTHQUANT" else None,
    )
    assert type(q[2]) is nq.Linear
    assert nq.metrics.sqnr(model(x), q(x)) > 30


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("convert", ["SMOOTHQUANT", "LLM_INT8", "static"])
def test_converters_keep_a_linears_activation(activation, convert):
    """A Linear(activation=...) keeps its activation through every converter."""
    from numbaq.static import calibrate, quantize_static

    rng = np.random.default_rng(5)
    w = rng.normal(size=(16, 32)).astype(np.float32)
    x = rng.normal(size=(8, 32)).astype(np.float32)
    model = nq.Sequential(nq.Linear(w, rng.normal(size=16), activation=activation))
    if convert == "static":
        quantized = quantize_static(model, calibrate(model, [x]))
    elif convert == "SMOOTHQUANT":
        quantized = nq.quantize_dynamic(model, scheme=convert, calibration=[x])
    else:  # a low threshold: outlier channels in float, the activation after the sum
        quantized = nq.quantize_dynamic(model, scheme=convert, threshold=1.0)
    y, expected = quantized(x), model(x)
    assert (y >= -0.2).all()  # ReLU >= 0, GELU >= -0.17: the activation was applied
    assert nq.metrics.sqnr(expected, y) > 35
