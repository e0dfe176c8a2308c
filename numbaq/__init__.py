"""numbaq: dynamic quantization of neural networks, in Python compiled with Numba.

The pipeline, one stage to a module::

    kernels/stats.py     runtime min / max          (njit kernels)
    kernels/quantize.py  qparams, quantize, dequantize, fused dynamic pass
    kernels/gemm.py      integer GEMM paths (VNNI, AVX-512BW, AVX2, plain), packing
    ops.py               the public verbs below, with validation
    weights.py           quantize_weight, QuantizedWeight
    weights_q4.py        Q4Weight: 4-bit block weights (llama.cpp's Q4_1)
    matmul.py            matmul_integer, quantized_linear
    layers/              Linear, LSTM(Cell), GRU(Cell), Sequential and Quant* twins
    convert.py, interop.py, io.py, report.py
                         quantize_dynamic, from_torch, save/load, compare/trace
    observers.py, static.py, outliers.py
                         calibration, static quantization, SmoothQuant / LLM.int8
    qparams.py, schemes.py, metrics.py, reference.py (numpy twins)

Importing numbaq compiles nothing; kernels compile on first use, or all at once
with :func:`warmup`, and are cached on disk.
"""

from __future__ import annotations

from . import config, layers, metrics, observers, outliers, reference, schemes
from .codes import dequantize, dynamic_quantize, dynamic_quantize_linear, fake_quantize, quantize
from .convert import quantize_dynamic
from .interop import from_torch
from .io import load, save
from .layers import (
    GELU,
    GRU,
    LSTM,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    Q4Linear,
    QuantGRU,
    QuantGRUCell,
    QuantLinear,
    QuantLSTM,
    QuantLSTMCell,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from .matmul import (
    QuantizedWeight,
    gemm_path,
    info,
    matmul_integer,
    max_k,
    quantize_weight,
    quantized_linear,
)
from .ops import absmax, choose_qparams, minmax, qparams_from_minmax
from .qparams import QParams, QScheme
from .report import batch_independent, compare, trace
from .schemes import DEFAULT_SCHEME
from .static import StaticQuantLinear, calibrate, quantize_static
from .weights_q4 import Q4Weight

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SCHEME",
    "GELU",
    "GRU",
    "LSTM",
    "GRUCell",
    "LSTMCell",
    "Linear",
    "Module",
    "Q4Linear",
    "Q4Weight",
    "QParams",
    "QScheme",
    "QuantGRU",
    "QuantGRUCell",
    "QuantLSTM",
    "QuantLSTMCell",
    "QuantLinear",
    "QuantizedWeight",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "StaticQuantLinear",
    "Tanh",
    "absmax",
    "batch_independent",
    "calibrate",
    "choose_qparams",
    "compare",
    "config",
    "dequantize",
    "dynamic_quantize",
    "dynamic_quantize_linear",
    "fake_quantize",
    "from_torch",
    "gemm_path",
    "info",
    "layers",
    "load",
    "matmul_integer",
    "max_k",
    "metrics",
    "minmax",
    "observers",
    "outliers",
    "qparams_from_minmax",
    "quantize",
    "quantize_dynamic",
    "quantize_static",
    "quantize_weight",
    "quantized_linear",
    "reference",
    "save",
    "schemes",
    "trace",
    "warmup",
]


def warmup(verbose: bool = False) -> float:
    """Compile (or load from the on-disk cache) the kernels for common signatures.

    Runs every public verb on small float32 inputs, for each named scheme, on both
    the serial and the parallel entry points, and the dynamic Linear and
    ``matmul_integer`` on the active GEMM path.

    Parameters
    ----------
    verbose : bool
        Print the time after each stage.

    Returns
    -------
    float
        The seconds it took (under a second when every kernel is in the disk cache).

    Examples
    --------
    >>> seconds = warmup()
    """
    import time

    import numpy as np

    start = time.perf_counter()
    small = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    large = np.resize(small, (config.PARALLEL_MIN // 32 + 1, 32))
    for x in (small, large):
        for scheme in schemes.SCHEMES.values():
            q, qp = dynamic_quantize(x, scheme)
            dequantize(q, qp)
            quantize(x, choose_qparams(x, scheme))
        for dtype in ("int8", "uint8"):
            fake_quantize(x, "PER_TOKEN_INT8", granularity="column", dtype=dtype)
        if verbose:
            print(f"warmup: shape {x.shape} ready after {time.perf_counter() - start:.2f} s")
    qweight = quantize_weight(small)
    for m in (1, config.GEMM_PARALLEL_MIN // (32 * 2) + 1):  # serial, then parallel
        x = np.resize(small, (m, 32))
        for scheme in schemes.SCHEMES.values():
            quantized_linear(x, qweight, np.zeros(2, np.float32), scheme)
        quantized_linear(x, qweight, activation="relu")
    for a_dtype in (np.uint8, np.int8):
        for b_dtype in (np.uint8, np.int8):
            matmul_integer(np.ones((2, 32), a_dtype), np.ones((32, 2), b_dtype), 1, 1)
    if verbose:
        print(f"warmup: GEMM ({gemm_path()[0]}) ready after {time.perf_counter() - start:.2f} s")
    return time.perf_counter() - start
