"""A sweep of odd input at every public verb of ``numbaq.__all__`` that takes arrays.

Each array argument, one at a time, gets: empty arrays, 0-d, wrong dtypes (int, bool,
complex, object, strings, float16), lists, None, non-contiguous and Fortran-ordered
views, NaN and Inf, float32's largest values, float64 beyond float32's range, the
smallest subnormals, zeros and constants. The outcome must be a valid result (no Inf or
NaN from finite input) or a ValueError / TypeError whose message names an argument:
never a Numba error, an IndexError, ZeroDivisionError or RecursionError, nor numpy's own
message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import numbaq as nq
from numbaq import metrics, observers
from numbaq.outliers import LLMInt8Linear, SmoothQuantLinear

F32_MAX = np.finfo(np.float32).max
RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 16)).astype(np.float32)
X32 = RNG.standard_normal((4, 32)).astype(np.float32)
W = RNG.standard_normal((8, 16)).astype(np.float32)
B = np.zeros(8, np.float32)
QW = nq.quantize_weight(W)
QW32 = nq.quantize_weight(RNG.standard_normal((8, 32)).astype(np.float32))
QP_ROW = nq.choose_qparams(X, "PER_TOKEN_INT8")
QP_TENSOR = nq.choose_qparams(X, "ONNX")
FLOAT_MODEL = nq.Sequential(nq.Linear(W, B), nq.ReLU())
MODEL = nq.quantize_dynamic(FLOAT_MODEL)
STATIC = nq.quantize_static(nq.Linear(W, B), nq.calibrate(nq.Linear(W, B), [X]))
QLSTM = nq.quantize_dynamic(nq.LSTM(16, 5))
QGRU = nq.quantize_dynamic(nq.GRU(16, 5))
QGRU_CELL = nq.quantize_dynamic(nq.GRUCell(16, 5))
QLSTM_CELL = nq.quantize_dynamic(nq.LSTMCell(16, 5))
SMOOTH = SmoothQuantLinear(nq.Linear(W, B), act_absmax=np.abs(X).max(0))
LLM_INT8 = LLMInt8Linear(nq.Linear(W, B))


def _with(base, index, value):
    out = base.copy()
    out.flat[index] = value
    return out


def float_inputs(base):
    """(label, value, finite) for a float array argument shaped like ``base``."""
    shape = base.shape
    mid = base.size // 2
    return [
        ("empty", np.zeros((0,) + shape[1:], np.float32), True),
        ("empty last axis", np.zeros(shape[:-1] + (0,), np.float32), True),
        ("0-d", np.float32(1.5), True),
        ("int", np.round(base * 4).astype(np.int32), True),
        ("bool", base > 0, True),
        ("complex", base.astype(np.complex64), True),
        ("object", base.astype(object), True),
        ("str", np.full(shape, "a"), True),
        ("float16", base.astype(np.float16), True),
        ("float64", base.astype(np.float64), True),
        ("list", base.tolist(), True),
        ("None", None, True),
        ("non-contiguous", np.repeat(base, 2, axis=-1)[..., ::2], True),
        ("fortran", np.asfortranarray(base), True),
        ("nan", _with(base, mid, np.nan), False),
        ("inf", _with(base, mid, np.inf), False),
        ("-inf", _with(base, mid, -np.inf), False),
        ("float32 max", np.full(shape, F32_MAX, np.float32), True),
        ("float32 max +-", np.where(base > 0, F32_MAX, -F32_MAX).astype(np.float32), True),
        ("one float32 max", _with(base, mid, F32_MAX), True),
        ("float64 beyond float32", np.full(shape, 1e39), True),
        ("float64 tiny", np.full(shape, 1e-300), True),
        ("subnormal", np.full(shape, 1e-45, np.float32), True),
        ("zeros", np.zeros(shape, np.float32), True),
        ("-0.0", np.full(shape, -0.0, np.float32), True),
        ("constant", np.full(shape, 3.0, np.float32), True),
        ("negative constant", np.full(shape, -7.0, np.float32), True),
    ]


def int_inputs(base):
    """(label, value, finite) for an integer array argument shaped like ``base``."""
    return [
        ("empty", np.zeros((0,) + base.shape[1:], base.dtype), True),
        ("0-d", base.dtype.type(1), True),
        ("float", base.astype(np.float32), True),
        ("int32", base.astype(np.int32), True),
        ("bool", base > 0, True),
        ("object", base.astype(object), True),
        ("str", np.full(base.shape, "a"), True),
        ("non-contiguous", np.repeat(base, 2, axis=-1)[..., ::2], True),
        ("fortran", np.asfortranarray(base), True),
        ("list", base.tolist(), True),
        ("None", None, True),
        ("extremes", np.where(base > 0, np.iinfo(base.dtype).max, np.iinfo(base.dtype).min), True),
    ]


# verb -> (call taking the arguments by name, {argument: (default, "f" or "i", names)}):
# ``names``: the words an error about that argument may cite (the argument, or how the
# verb's messages call it)
LAYER_INPUT = ["x", "input"]
VERBS = {
    "minmax": (lambda a: nq.minmax(a["x"], "row"), {"x": (X, "f", ["x"])}),
    "absmax": (lambda a: nq.absmax(a["x"], "column"), {"x": (X, "f", ["x"])}),
    "choose_qparams": (lambda a: nq.choose_qparams(a["x"], "ONNX"), {"x": (X, "f", ["x"])}),
    "choose_qparams block": (
        lambda a: nq.choose_qparams(a["x"], "BLOCK_Q8_0", block_size=4),
        {"x": (X, "f", ["x"])},
    ),
    "qparams_from_minmax": (
        lambda a: nq.qparams_from_minmax(a["min"], a["max"], "ONNX"),
        {
            "min": (X.min(1), "f", ["min", "min and max"]),
            "max": (X.max(1), "f", ["max", "min and max"]),
        },
    ),
    "quantize": (lambda a: nq.quantize(a["x"], QP_TENSOR), {"x": (X, "f", ["x"])}),
    "quantize per row": (
        lambda a: nq.quantize(a["x"], QP_ROW),
        {"x": (X, "f", ["x", "qparams.scale"])},
    ),
    "dequantize": (
        lambda a: nq.dequantize(a["q"], QP_ROW),
        {"q": (nq.quantize(X, QP_ROW), "i", ["q", "qparams.scale"])},
    ),
    "dynamic_quantize": (
        lambda a: nq.dynamic_quantize(a["x"], "PER_TOKEN_UINT8"),
        {"x": (X, "f", ["x"])},
    ),
    "dynamic_quantize tensor": (
        lambda a: nq.dynamic_quantize(a["x"], "TORCH"),
        {"x": (X, "f", ["x"])},
    ),
    "dynamic_quantize_linear": (
        lambda a: nq.dynamic_quantize_linear(a["x"]),
        {"x": (X, "f", ["x"])},
    ),
    "fake_quantize": (
        lambda a: nq.fake_quantize(a["x"], "PER_TOKEN_INT8"),
        {"x": (X, "f", ["x"])},
    ),
    "fake_quantize column": (
        lambda a: nq.fake_quantize(a["x"], "PER_TOKEN_INT8", granularity="column"),
        {"x": (X, "f", ["x"])},
    ),
    "quantize_weight": (lambda a: nq.quantize_weight(a["w"]), {"w": (W, "f", ["w"])}),
    "quantize_weight int4 groups": (
        lambda a: nq.quantize_weight(a["w"], dtype="int4", group_size=8),
        {"w": (W, "f", ["w", "group_size"])},
    ),
    "quantized_linear": (
        lambda a: nq.quantized_linear(a["x"], QW, a["bias"]),
        {"x": (X, "f", ["x"]), "bias": (B, "f", ["bias"])},
    ),
    "quantized_linear block": (
        lambda a: nq.quantized_linear(a["x"], QW32, a["bias"], "BLOCK_Q8_0"),
        {"x": (X32, "f", ["x"]), "bias": (B, "f", ["bias"])},
    ),
    "matmul_integer": (
        lambda a: nq.matmul_integer(a["a"], a["b"], a["a_zero_point"], a["b_zero_point"]),
        {
            "a": (nq.dynamic_quantize(X, "ONNX")[0], "i", ["a"]),
            "b": (QW.q.T.copy(), "i", ["b"]),
            "a_zero_point": (np.full(4, 3, np.uint8), "i", ["a_zero_point"]),
            "b_zero_point": (np.zeros(8, np.int8), "i", ["b_zero_point"]),
        },
    ),
    "QuantizedWeight.from_int8": (
        lambda a: nq.QuantizedWeight.from_int8(a["q"], a["scale"]),
        {"q": (QW.q, "i", ["q"]), "scale": (QW.scale, "f", ["scale"])},
    ),
    "QParams": (
        lambda a: nq.quantize(X, nq.QParams(a["scale"], a["zero_point"], "int8", -128, 127, "row")),
        {
            "scale": (QP_ROW.scale, "f", ["scale", "qparams.scale"]),
            "zero_point": (QP_ROW.zero_point, "i", ["zero_point", "qparams.zero_point"]),
        },
    ),
    "metrics.sqnr": (
        lambda a: metrics.sqnr(a["reference"], a["approx"]),
        {"reference": (X, "f", ["reference"]), "approx": (X * 1.01, "f", ["approx"])},
    ),
    "metrics.mse": (
        lambda a: metrics.mse(a["reference"], a["approx"]),
        {"reference": (X, "f", ["reference"]), "approx": (X * 1.01, "f", ["approx"])},
    ),
    "metrics.max_abs_error": (
        lambda a: metrics.max_abs_error(a["reference"], a["approx"]),
        {"reference": (X, "f", ["reference"]), "approx": (X * 1.01, "f", ["approx"])},
    ),
    "metrics.cosine": (
        lambda a: metrics.cosine(a["reference"], a["approx"]),
        {"reference": (X, "f", ["reference"]), "approx": (X * 1.01, "f", ["approx"])},
    ),
    "MinMaxObserver": (
        lambda a: observers.MinMaxObserver().update(a["x"]).qparams(),
        {"x": (X, "f", ["x", "calibration data"])},
    ),
    "MovingAverageMinMaxObserver": (
        lambda a: observers.MovingAverageMinMaxObserver().update(X).update(a["x"]).qparams(),
        {"x": (X, "f", ["x", "calibration data"])},
    ),
    "HistogramObserver": (
        lambda a: observers.HistogramObserver(bins=64).update(a["x"]).qparams(),
        {"x": (X, "f", ["x", "calibration data"])},
    ),
    "MSEObserver": (
        lambda a: observers.MSEObserver(bins=64).update(a["x"]).qparams(),
        {"x": (X, "f", ["x", "calibration data"])},
    ),
    "batch_independent": (
        lambda a: nq.batch_independent(MODEL, a["x"]),
        {"x": (X, "f", LAYER_INPUT)},
    ),
    "compare": (lambda a: nq.compare(FLOAT_MODEL, MODEL, a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "trace": (lambda a: nq.trace(MODEL, a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "calibrate": (lambda a: nq.calibrate(FLOAT_MODEL, [a["x"]]), {"x": (X, "f", LAYER_INPUT)}),
    "Linear": (
        lambda a: nq.Linear(a["weight"], a["bias"])(X),
        {"weight": (W, "f", ["weight"]), "bias": (B, "f", ["bias"])},
    ),
    "Linear x": (lambda a: nq.Linear(W, B)(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "QuantLinear": (
        lambda a: nq.QuantLinear(QW, a["bias"])(a["x"]),
        {"x": (X, "f", LAYER_INPUT), "bias": (B, "f", ["bias"])},
    ),
    "Sequential": (lambda a: MODEL(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "StaticQuantLinear": (lambda a: STATIC(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "QuantLSTM": (lambda a: QLSTM(a["x"]), {"x": (X[:, None], "f", LAYER_INPUT)}),
    "QuantGRU h_0": (
        lambda a: QGRU(X[:, None], a["h_0"]),
        {"h_0": (np.zeros((1, 1, 5), np.float32), "f", ["h_0"])},
    ),
    "QuantGRUCell": (lambda a: QGRU_CELL(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "QuantLSTMCell": (lambda a: QLSTM_CELL(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "SmoothQuantLinear": (lambda a: SMOOTH(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
    "LLMInt8Linear": (lambda a: LLM_INT8(a["x"]), {"x": (X, "f", LAYER_INPUT)}),
}

# numpy's and Python's own messages: an error a verb let through instead of its own
RAW = [
    "could not convert",
    "float() argument",
    "int() argument",
    "object arrays",
    "invalid literal",
    "unsupported operand",
    "not supported between",
    "cannot reshape",
    "could not be broadcast",
    "non-broadcastable",
    "'NoneType'",
    "ufunc",
    "setting an array element",
    "index out of",
    "out of bounds for axis",
    "division by zero",
]
# sqnr's documented infinities (equal arrays; an all-zero reference)
INFINITE_BY_DESIGN = {"metrics.sqnr"}
# report objects hold NaN by design (e.g. ``clipped`` for layers without a scheme)
REPORTS = {"compare", "trace"}


def _floats(result):
    out, stack = [], [result]
    while stack:
        value = stack.pop()
        if isinstance(value, (tuple, list)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (nq.QParams, nq.QuantizedWeight)):
            stack.append(value.scale)
        elif isinstance(value, (float, np.floating, np.ndarray)):
            arr = np.asarray(value)
            if arr.dtype.kind == "f":
                out.append(arr)
    return out


def _cases():
    for verb, (_, args) in VERBS.items():
        for arg, (base, kind, _) in args.items():
            inputs = float_inputs(base) if kind == "f" else int_inputs(base)
            for label, value, finite in inputs:
                yield pytest.param(verb, arg, label, value, finite, id=f"{verb}-{arg}-{label}")


def _names(message: str, names) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) for name in names)


@pytest.mark.parametrize("verb, arg, label, value, finite", list(_cases()))
def test_sweep(verb, arg, label, value, finite):
    call, args = VERBS[verb]
    kwargs = {name: default for name, (default, _, _) in args.items()}
    kwargs[arg] = value
    try:
        result = call(kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert _names(message, args[arg][2]), f"{type(err).__name__} naming no argument: {message}"
        assert not any(raw in message for raw in RAW), f"numpy's own message: {message}"
        if finite and label != "float64 beyond float32":
            assert "contains NaN or Inf" not in message, f"finite input called NaN: {message}"
        return
    if not finite or verb in REPORTS or verb in INFINITE_BY_DESIGN:
        return
    for arr in _floats(result):
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        assert not bad, f"{bad} Inf/NaN values returned from finite input ({label})"


# settings beside the arrays, found by the same sweep: (call, exception, argument named)
SETTINGS = {
    "per_channel text": (lambda: nq.quantize_weight(W, per_channel="no"), TypeError, "per_channel"),
    "averaging_constant text": (
        lambda: observers.MovingAverageMinMaxObserver(averaging_constant="a"),
        TypeError,
        "averaging_constant",
    ),
    "averaging_constant bool": (
        lambda: observers.MovingAverageMinMaxObserver(averaging_constant=True),
        TypeError,
        "averaging_constant",
    ),
    "averaging_constant nan": (
        lambda: observers.MovingAverageMinMaxObserver(averaging_constant=float("nan")),
        ValueError,
        "averaging_constant",
    ),
    "percentile text": (
        lambda: observers.HistogramObserver(percentile="a"),
        TypeError,
        "percentile",
    ),
    "fractions text": (lambda: observers.MSEObserver(fractions="abc"), TypeError, "fractions"),
    "fractions 2-D": (lambda: observers.MSEObserver(fractions=[[0.5]]), TypeError, "fractions"),
    "max_k zero span": (lambda: nq.max_k(0, 5), ValueError, "a_span"),
    "max_k text": (lambda: nq.max_k(255, "a"), TypeError, "b_span"),
    "unknown scheme field": (
        lambda: nq.dynamic_quantize(X, "ONNX", granularty="row"),
        TypeError,
        "granularty",
    ),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_settings(case):
    call, error, name = SETTINGS[case]
    with pytest.raises(error, match=re.escape(name)):
        call()
