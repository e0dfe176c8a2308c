"""Static quantization: calibration, fixed scales, clipping counts, mixing with dynamic."""

import numpy as np

import numbaq as nq
from numbaq.static import StaticQuantLinear, calibrate, quantize_static


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return nq.Sequential(
        nq.Linear(rng.normal(size=(32, 16)).astype(np.float32), rng.normal(size=32)),
        nq.ReLU(),
        nq.Linear(rng.normal(size=(8, 32)).astype(np.float32)),
    )


def test_calibration_equal_to_the_input_reproduces_dynamic_per_tensor(gemm_path):
    """A static layer calibrated (min/max) on exactly its input is the dynamic per-tensor
    layer, bit for bit. (In a deeper model, later layers were calibrated on the float
    model's hidden activations, which the quantized model only approximates.)"""
    rng = np.random.default_rng(1)
    layer = _model()[0]
    for scheme in ("ONNX", "TORCH", nq.QScheme("int8", symmetric=True, narrow_range=True)):
        x = (rng.normal(size=(9, 16)) * 3).astype(np.float32)
        static = quantize_static(layer, calibrate(layer, [x], scheme=scheme))
        dynamic = nq.quantize_dynamic(layer, scheme=scheme)
        np.testing.assert_array_equal(static(x), dynamic(x))
        assert static.clipped == 0


def test_clipping_counts_are_exact():
    model = _model()
    rng = np.random.default_rng(2)
    calib = rng.normal(size=(20, 16)).astype(np.float32)
    static = quantize_static(model, calibrate(model, [calib]))
    layer = static[0]
    assert isinstance(layer, StaticQuantLinear)
    x = (rng.normal(size=(10, 16)) * 4).astype(np.float32)
    static(x)
    qp = layer.act_qparams
    codes = np.rint(x / qp.scale) + int(qp.zero_point)
    assert layer.clipped == int(np.count_nonzero((codes < 0) | (codes > 255)))
    assert layer.seen == x.size and "clipped" in repr(layer)


def test_static_and_dynamic_layers_mix():
    model = _model()
    x = np.random.default_rng(3).normal(size=(4, 16)).astype(np.float32)
    observers = calibrate(model, [x])
    static = quantize_static(model, {"0": observers["0"]})
    mixed = nq.quantize_dynamic(static)
    assert [type(m).__name__ for m in mixed.children()] == [
        "StaticQuantLinear",
        "ReLU",
        "QuantLinear",
    ]
    assert nq.metrics.sqnr(model(x), mixed(x)) > 25


def test_every_observer_calibrates():
    model = _model()
    batches = [np.random.default_rng(i).normal(size=(6, 16)).astype(np.float32) for i in range(3)]
    for name in ("minmax", "moving_average", "histogram", "mse"):
        observers = calibrate(model, batches, observer=name)
        assert set(observers) == {"0", "2"}
        out = quantize_static(model, observers)(batches[0])
        assert nq.metrics.sqnr(model(batches[0]), out) > 15
