"""Values at float32's edges, at every public verb: an exact or finite result, or a clear
ValueError naming the argument; never Inf or NaN from finite input.

The edges: float32's largest finite values (and their neighbours a few steps down),
values beyond float32's range in float64 input (Inf once converted), the smallest
subnormals, zeros, and ordinary values beside them, mixed at random by hypothesis.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numbaq as nq
from numbaq import metrics, observers

F32_MAX = float(np.finfo(np.float32).max)
EDGES = [
    F32_MAX,
    -F32_MAX,
    float(np.nextafter(np.float32(F32_MAX), np.float32(0))),
    F32_MAX / 2,
    -F32_MAX / 3,
    1e38,
    1e-45,
    -1e-45,
    float(np.finfo(np.float32).tiny),
    0.0,
    1.0,
    -2.5,
    1e30,
]
BEYOND = [3.5e38, -1e39, 1e300]  # float64 only: Inf once converted to float32


@st.composite
def _arrays(draw, k: int = 8, beyond: bool = True):
    """(R, k) float32 or float64 arrays: ordinary values with a few edge values put in,
    or one edge value throughout (a constant tensor at the edge)."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    edges = EDGES + (BEYOND if beyond and dtype is np.float64 else [])
    shape = (draw(st.integers(1, 4)), k)
    if draw(st.integers(0, 5)) == 0:
        return np.full(shape, draw(st.sampled_from(edges)), dtype)
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(-1e3, 1e3, width=32)))
    for _ in range(draw(st.integers(0, 3))):
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(edges))
    return x


def _floats(result) -> list[np.ndarray]:
    """Every float array a verb returned (in tuples, QParams, QuantizedWeight)."""
    out, stack = [], [result]
    while stack:
        value = stack.pop()
        if isinstance(value, (tuple, list)):
            stack.extend(value)
        elif isinstance(value, (nq.QParams, nq.QuantizedWeight)):
            stack.append(value.scale)
        elif isinstance(value, (float, np.floating, np.ndarray)):
            arr = np.asarray(value)
            if arr.dtype.kind == "f":
                out.append(arr)
    return out


def _finite_or_clear(call, names, *inputs):
    """``call()`` returns finite floats, or raises a ValueError naming one of ``names``.

    ``inputs`` that are not finite in float32 (float64 beyond float32's range) may
    also be refused as NaN/Inf; finite inputs must never give Inf or NaN back."""
    try:
        result = call()
    except ValueError as err:
        assert _names(str(err), names), str(err)
        return None
    for arr in _floats(result):
        assert np.isfinite(arr).all(), f"Inf/NaN returned from finite input: {arr}"
    return result


def _qw(w):
    return nq.quantize_weight(np.asarray(w).reshape(-1, 8)[:4])  # float64 converted there


BLOCK_8 = nq.schemes.BLOCK_Q8_0.replace(block_size=8)


def _names(message: str, names) -> bool:
    """Whether ``message`` cites one of ``names`` as a word (``w`` is not ``weights``)."""
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) for name in names)


# verb name -> (call on one (R, 8) array, argument names an error may cite)
VERBS = {
    "minmax": (lambda x: nq.minmax(x, "row"), ["x"]),
    "absmax": (lambda x: nq.absmax(x), ["x"]),
    "choose_qparams ONNX": (lambda x: nq.choose_qparams(x, "ONNX"), ["x"]),
    "choose_qparams TORCH": (lambda x: nq.choose_qparams(x, "TORCH"), ["x"]),
    "choose_qparams column": (
        lambda x: nq.choose_qparams(x, "PER_TOKEN_INT8", granularity="column"),
        ["x"],
    ),
    "qparams_from_minmax": (
        lambda x: nq.qparams_from_minmax(x.min(1), x.max(1), "PER_TOKEN_UINT8"),
        ["min and max"],
    ),
    "qparams_from_minmax sym": (
        lambda x: nq.qparams_from_minmax(x.min(1), x.max(1), "PER_TOKEN_INT8"),
        ["min and max"],
    ),
    "quantize": (lambda x: nq.quantize(x, nq.choose_qparams(np.ones(8), "ONNX")), ["x"]),
    "dynamic_quantize row": (lambda x: nq.dynamic_quantize(x, "PER_TOKEN_UINT8"), ["x"]),
    "dynamic_quantize tensor": (lambda x: nq.dynamic_quantize(x, "TORCH"), ["x"]),
    "dynamic_quantize block": (
        lambda x: nq.dynamic_quantize(x, "BLOCK_Q8_0", block_size=4),
        ["x"],
    ),
    "dynamic_quantize_linear": (lambda x: nq.dynamic_quantize_linear(x), ["x"]),
    "fake_quantize row": (lambda x: nq.fake_quantize(x, "PER_TOKEN_INT8"), ["x"]),
    "fake_quantize column": (
        lambda x: nq.fake_quantize(x, "PER_TOKEN_INT8", granularity="column"),
        ["x"],
    ),
    "fake_quantize qparams": (
        lambda x: nq.fake_quantize(x, nq.choose_qparams(np.full(8, 1e38), "TORCH")),
        ["x"],
    ),
    "quantize_weight": (lambda x: nq.quantize_weight(x), ["w"]),
    "quantize_weight per tensor": (lambda x: nq.quantize_weight(x, per_channel=False), ["w"]),
    "quantize_weight int4 groups": (
        lambda x: nq.quantize_weight(x, dtype="int4", group_size=4),
        ["w"],
    ),
    "QuantizedWeight.dequantize": (lambda x: nq.quantize_weight(x).dequantize(), ["w"]),
    "quantized_linear x": (lambda x: nq.quantized_linear(x, _qw(np.ones(32))), ["x"]),
    "quantized_linear x int8": (
        lambda x: nq.quantized_linear(x, _qw(np.ones(32)), scheme="PER_TOKEN_INT8"),
        ["x"],
    ),
    "quantized_linear w": (
        lambda x: nq.quantized_linear(np.ones((2, 8)), _qw(np.resize(x, 32)), None, "TORCH"),
        ["w", "x"],
    ),
    "quantized_linear both": (
        lambda x: nq.quantized_linear(x, _qw(np.resize(x, 32)), scheme="PER_TOKEN_INT8"),
        ["w", "x"],
    ),
    "quantized_linear block": (
        lambda x: nq.quantized_linear(x, _qw(np.resize(x[::-1], 32)), scheme=BLOCK_8),
        ["w", "x"],
    ),
    "quantized_linear bias": (
        lambda x: nq.quantized_linear(np.ones((1, 8)), _qw(np.ones(32)), np.resize(x, 4)),
        ["bias"],
    ),
    "QuantLinear": (
        lambda x: nq.QuantLinear(_qw(np.resize(x, 32)), scheme="PER_TOKEN_INT8")(x),
        ["w", "x"],
    ),
    "from_int8 scale": (
        lambda x: nq.QuantizedWeight.from_int8(np.full((8, 4), -128, np.int8), np.abs(x[0])),
        ["scale"],
    ),
    "dequantize": (
        lambda x: nq.dequantize(
            np.array([-128, 0, 127], np.int8),
            nq.QParams(np.abs(x[0, 0]) or 1.0, 0, "int8", -128, 127),
        ),
        ["scale"],
    ),
    "observer minmax": (lambda x: observers.MinMaxObserver().update(x).qparams(), ["x"]),
    "observer histogram": (
        lambda x: observers.HistogramObserver(bins=64).update(x).qparams(),
        ["x"],
    ),
    "observer mse": (lambda x: observers.MSEObserver(bins=64).update(x).qparams(), ["x"]),
    "observer symmetric": (
        lambda x: observers.MinMaxObserver("PER_TOKEN_INT8").update(x).qparams(),
        ["x"],
    ),
}
# the names the calibration observers use for what they saw
OBSERVED = ["calibration data"]


@pytest.mark.parametrize("verb", list(VERBS))
@given(x=_arrays())
def test_edges_give_finite_results_or_clear_errors(verb, x):
    call, names = VERBS[verb]
    _finite_or_clear(lambda: call(x), names + OBSERVED, x)


@pytest.mark.parametrize("name", ["sqnr", "mse", "max_abs_error", "cosine"])
@given(ref=_arrays(beyond=False), seed=st.integers(0, 2**16))
def test_metrics_at_float_edges(name, ref, seed):
    """float64 metrics of float32-edge tensors (and float64 near its own top): finite, or
    a ValueError naming both arrays when the true value is beyond float64."""
    approx = ref * np.random.default_rng(seed).uniform(-1, 2, ref.shape)
    fn = getattr(metrics, name)
    if name == "sqnr" and (np.array_equal(ref, approx) or not ref.any()):
        # documented: inf for equal arrays, -inf for an all-zero reference
        assert fn(ref, approx) == (np.inf if np.array_equal(ref, approx) else -np.inf)
        return
    for scale in (1.0, 2.0**800):  # the second: float64 values near float64's largest
        value = _finite_or_clear(
            lambda scale=scale: fn(ref.astype(np.float64) * scale, approx * scale),
            ["reference and approx"],
        )
        if value is None or name != "cosine":
            continue
        assert -1 - 1e-12 <= value <= 1 + 1e-12


def test_sqnr_and_cosine_are_scale_free():
    """The ratio metrics are the same at float64's edges as at 1 (no overflow to NaN)."""
    ref, approx = np.array([1.0, -2.0, 3.0]), np.array([1.1, -2.0, 2.5])
    for scale in (2.0**1000, 2.0**1022, 2.0**-1000):  # 3 * 2**1022: near float64 max
        assert metrics.sqnr(ref * scale, approx * scale) == metrics.sqnr(ref, approx)
        assert metrics.cosine(ref * scale, approx * scale) == metrics.cosine(ref, approx)


def test_mse_beyond_float64_is_a_clear_error():
    with pytest.raises(ValueError, match="reference and approx"):
        metrics.mse([1e300, -1e300], [-1e300, 1e300])
    with pytest.raises(ValueError, match="reference and approx"):
        metrics.max_abs_error([1.7e308], [-1.7e308])
    # the squares overflow float64, their mean does not: computed on scaled values
    assert metrics.mse([1e154, 0.0, 0.0, 0.0], [-1e154, 0.0, 0.0, 0.0]) == pytest.approx(1e308)


@given(
    k=st.sampled_from([4, 8, 32]),
    x_exp=st.integers(0, 127),
    w_exp=st.integers(-20, 127),
    seed=st.integers(0, 2**16),
    scheme=st.sampled_from(["PER_TOKEN_UINT8", "PER_TOKEN_INT8", "TORCH", "BLOCK_Q8_0"]),
)
def test_quantized_linear_overflow_only_when_the_output_does(k, x_exp, w_exp, seed, scheme):
    """Large activations and weights: the output is finite and close to the float64
    product whenever that product fits float32 with room to spare; an overflow error
    comes only when it does not fit."""
    rng = np.random.default_rng(seed)
    x = (rng.uniform(-1, 1, (3, k)) * 2.0**x_exp).astype(np.float32)
    w = (rng.uniform(-1, 1, (5, k)) * 2.0**w_exp).astype(np.float32)
    sch = nq.schemes.resolve(scheme)
    if sch.granularity == "block":
        sch = sch.replace(block_size=4)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    exact = x64 @ w64.T
    bound = np.abs(x64) @ np.abs(w64).T
    try:
        y = nq.quantized_linear(x, nq.quantize_weight(w), scheme=sch)
    except ValueError as err:
        assert "overflows float32" in str(err) and "rescale x" in str(err), str(err)
        if "range of x" in str(err):  # an asymmetric scheme: max - min itself overflows
            assert (x64.max(1) - np.minimum(x64.min(1), 0)).max() > F32_MAX
        else:
            assert bound.max() > F32_MAX / 4, "refused an output that fits float32"
        return
    assert np.isfinite(y).all()
    if bound.max() < F32_MAX / 4:  # 8-bit steps of x (per tensor at worst) and of w
        step_x = np.abs(x64).max() * np.abs(w64).sum(1)[None, :]
        step_w = np.abs(x64).sum(1)[:, None] * np.abs(w64).max(1)[None, :]
        assert (np.abs(y - exact) <= 0.02 * (step_x + step_w)).all()


def test_quantized_linear_near_float32_max_is_a_clear_error():
    """The known case: inputs near float32's max, whose product overflows float32."""
    x = np.full((2, 8), F32_MAX / 2, np.float32)
    qw = nq.quantize_weight(np.ones((3, 8), np.float32))
    for scheme in ("PER_TOKEN_INT8", "TORCH", "BLOCK_Q8_0"):
        sch = nq.schemes.resolve(scheme)
        sch = sch.replace(block_size=8) if sch.granularity == "block" else sch
        with pytest.raises(ValueError, match=r"overflows float32.*rescale x"):
            nq.quantized_linear(x, qw, scheme=sch)
    with pytest.raises(ValueError, match=r"QuantLinear: .*overflows float32"):
        nq.QuantLinear(qw, scheme="PER_TOKEN_INT8")(x)
    # a bias near float32's max with a small product stays finite
    bias = np.full(3, F32_MAX, np.float32)
    y = nq.quantized_linear(np.ones((1, 8)), qw, bias)
    assert np.isfinite(y).all() and (y == np.float32(F32_MAX)).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_constant_and_zero_tensors_are_valid(dtype):
    """All-zero and constant tensors are ordinary input for every verb above."""
    for value in (0.0, 3.0, -7.5):
        x = np.full((3, 8), value, dtype)
        for verb, (call, _) in VERBS.items():
            if verb == "from_int8 scale" and value == 0:
                continue  # a scale, not a tensor: 0 is refused (scales must be positive)
            result = call(x)
            for arr in _floats(result):
                assert np.isfinite(arr).all(), verb


def _layers():
    from numbaq.outliers import LLMInt8Linear, SmoothQuantLinear

    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 8)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    return {
        "Linear": (nq.Linear(w, b), lambda layer, x: layer(x)),
        "QuantLinear": (nq.quantize_dynamic(nq.Linear(w, b)), lambda layer, x: layer(x)),
        "LLMInt8Linear": (LLMInt8Linear(nq.Linear(w, b)), lambda layer, x: layer(x)),
        "SmoothQuantLinear": (
            SmoothQuantLinear(nq.Linear(w, b), act_absmax=np.full(8, 1e-3)),  # s < 1
            lambda layer, x: layer(x),
        ),
        "QuantLSTM": (nq.quantize_dynamic(nq.LSTM(8, 3)), lambda layer, x: layer(x[:, None])),
        "QuantGRU": (nq.quantize_dynamic(nq.GRU(8, 3)), lambda layer, x: layer(x[:, None])),
        "QuantLSTMCell": (nq.quantize_dynamic(nq.LSTMCell(8, 3)), lambda layer, x: layer(x)),
        "QuantGRUCell": (nq.quantize_dynamic(nq.GRUCell(8, 3)), lambda layer, x: layer(x)),
    }


LAYERS = _layers()


@pytest.mark.parametrize("name", list(LAYERS))
@given(x=_arrays())
def test_layers_at_edges_give_finite_outputs_or_errors_naming_the_layer(name, x):
    """Every layer's input at float32's edges: finite outputs, or a ValueError that starts
    with the layer's name and names its input (``x`` or ``input``); finite float32 input
    is never called NaN or Inf. The float Linear refuses only outputs that do not fit."""
    layer, call = LAYERS[name]
    try:
        result = call(layer, x)
    except ValueError as err:
        message = str(err)
        assert message.startswith(f"{name}: "), message
        assert _names(message, ["x", "input"]), message
        if np.abs(x).max() <= F32_MAX:  # finite once converted
            assert "contains NaN or Inf" not in message, message
        if name == "Linear" and "overflows float32" in message:
            x64 = x.astype(np.float64)
            bound = np.abs(x64) @ np.abs(layer.weight.astype(np.float64)).T + np.abs(layer.bias)
            assert bound.max() > F32_MAX / 2, "refused an output that fits float32"
        return
    for arr in _floats(result):
        assert np.isfinite(arr).all(), f"Inf/NaN returned from finite input: {arr}"


def test_float_linear_overflow_is_refused_and_nan_passes_through():
    """The float Linear: an output beyond float32 from finite x, weights or bias is a clear
    error (before the activation could hide it); NaN and Inf in x pass through, as in
    float arithmetic (torch.nn.Linear's behaviour)."""
    w = np.ones((3, 4), np.float32)
    for activation in (None, "relu", "gelu"):
        layer = nq.Linear(w, activation=activation)
        with pytest.raises(ValueError, match=r"^Linear: the output x \. weight\^T .*rescale x"):
            layer(np.full((2, 4), F32_MAX / 2, np.float32))
        with pytest.raises(ValueError, match=r"^Linear: .*overflows float32"):
            layer(np.full((1, 4), 1e39))  # float64 beyond float32: finite where it came from
    with pytest.raises(ValueError, match=r"^Linear: .*overflows float32"):
        nq.Linear(w, np.full(3, F32_MAX, np.float32))(np.full((1, 4), 1e32, np.float32))
    with pytest.raises(ValueError, match=r"^Linear: .*\(or the weight\)"):
        nq.Linear(np.full((3, 4), F32_MAX, np.float32))(np.ones((1, 4), np.float32))
    x = np.ones((2, 4), np.float32)
    x[0, 1] = np.nan
    y = nq.Linear(w)(x)
    assert np.isnan(y[0]).all() and (y[1] == 4).all()
    # near the edge but fitting: exact
    y = nq.Linear(np.eye(4, dtype=np.float32))(np.full((1, 4), F32_MAX, np.float32))
    assert (y == np.float32(F32_MAX)).all()


def test_outlier_linears_near_float32_max_are_clear_errors():
    from numbaq.outliers import LLMInt8Linear, SmoothQuantLinear

    w = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    x = np.full((2, 8), F32_MAX, np.float32)
    with pytest.raises(ValueError, match=r"^LLMInt8Linear: the output x .*rescale x"):
        LLMInt8Linear(nq.Linear(w))(x)
    smooth = SmoothQuantLinear(nq.Linear(w), act_absmax=np.full(8, 1e-3))
    assert (smooth.inv_smoothing > 1).all()
    with pytest.raises(ValueError, match=r"^SmoothQuantLinear: the smoothed input") as info:
        smooth(x / 2)
    assert "rescale x" in str(info.value) and "contains NaN" not in str(info.value)
    x[0, 0] = np.nan  # NaN that came in is still called NaN
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        smooth(x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "LSTMCell", "GRUCell"])
def test_quantized_recurrent_overflow_names_the_layer_and_its_input(kind):
    layer = nq.quantize_dynamic(getattr(nq, kind)(8, 3))
    x = np.full((2, 8), F32_MAX, np.float32)
    x = x if kind.endswith("Cell") else x[:, None]
    with pytest.raises(ValueError, match=rf"^Quant{kind}: .*overflows float32") as info:
        layer(x)
    message = str(info.value)
    assert "rescale input" in message and not re.search(r"(?<!\w)x(?!\w)", message), message
