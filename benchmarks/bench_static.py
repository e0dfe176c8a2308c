"""Static against dynamic quantization, and the outlier case, in one run.

Run: ``python -m benchmarks.bench_static`` (writes the ``static`` section of RESULTS.md).

1. Outliers: Gaussian activations with 1% of the input channels x20, a Linear of
   768 -> 768. SQNR against float64 of every numbaq scheme (SmoothQuant calibrated on four
   other batches of the same distribution; static MinMax likewise), PyTorch's and ONNX
   Runtime's dynamic quantization on the same weights.
2. Latency of a static Linear (fixed scales) against the dynamic one, on the Linear
   benchmark's shapes, one after the other in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np

import numbaq as nq
from numbaq.static import calibrate, quantize_static

from . import bench_linear
from ._common import machine, markdown_table, median_us, write_section


def outlier_batch(rng, m=128, k=768, share=0.01, factor=20.0, channels=None):
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[:, channels] *= factor
    return x


def outlier_case(seed=0):
    rng = np.random.default_rng(seed)
    k = n = 768
    channels = rng.choice(k, int(0.01 * k), replace=False)
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    b = (rng.standard_normal(n) * 0.1).astype(np.float32)
    x = outlier_batch(rng, channels=channels)
    calib = [outlier_batch(rng, channels=channels) for _ in range(4)]
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + b
    layer = nq.Linear(w, b)
    models = {
        "numbaq PER_TOKEN_UINT8 (default)": nq.quantize_dynamic(layer),
        "numbaq PER_TOKEN_INT8": nq.quantize_dynamic(layer, scheme="PER_TOKEN_INT8"),
        "numbaq ONNX (per tensor)": nq.quantize_dynamic(layer, scheme="ONNX"),
        "numbaq BLOCK_Q8_0": nq.quantize_dynamic(layer, scheme="BLOCK_Q8_0"),
        "numbaq SMOOTHQUANT (calibrated, alpha 0.5)": nq.quantize_dynamic(
            layer, scheme="SMOOTHQUANT", calibration=calib
        ),
        "numbaq SMOOTHQUANT (weights only)": nq.quantize_dynamic(layer, scheme="SMOOTHQUANT"),
        "numbaq LLM_INT8 (threshold 6)": nq.quantize_dynamic(layer, scheme="LLM_INT8"),
        "numbaq static MinMax (calibrated)": quantize_static(layer, calibrate(layer, calib)),
    }
    sqnr = {name: nq.metrics.sqnr(exact, model(x)) for name, model in models.items()}
    try:
        methods = bench_linear._torch_methods(x, w, b)
        sqnr["torch quantize_dynamic"] = nq.metrics.sqnr(exact, methods["torch quantize_dynamic"]())
    except ImportError:
        pass
    try:
        with tempfile.TemporaryDirectory() as tmp:
            session = bench_linear._ort_session(w, b, 1, tmp)
            sqnr["ONNX Runtime dynamic (QInt8)"] = nq.metrics.sqnr(
                exact, session.run(None, {"X": x})[0]
            )
    except ImportError:
        pass
    return sqnr


def latency(shapes, repeat):
    rows = []
    for m, k, n in shapes:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((m, k)).astype(np.float32)
        layer = nq.Linear(
            (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), np.zeros(n, np.float32)
        )
        static = quantize_static(layer, calibrate(layer, [x]))
        dynamic = nq.quantize_dynamic(layer, scheme="ONNX")
        per_token = nq.quantize_dynamic(layer)
        t = {
            name: median_us(lambda f=f, x=x: f(x), repeat)
            for name, f in (
                ("static", static),
                ("dynamic ONNX", dynamic),
                ("dynamic per token", per_token),
            )
        }
        rows.append(
            [
                f"{m},{k},{n}",
                f"{t['static']:.0f}",
                f"{t['dynamic ONNX']:.0f}",
                f"{t['dynamic per token']:.0f}",
                f"{t['dynamic ONNX'] / t['static']:.2f}x",
            ]
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    sqnr = outlier_case()
    time.sleep(0.5)
    rows = latency(bench_linear.SHAPES, 30)
    text = "\n".join(
        [
            "## Static against dynamic, and activation outliers",
            "",
            "Command: `python -m benchmarks.bench_static`. Machine: " + machine() + ".",
            "",
            "Outliers: Gaussian activations (128 x 768) with 1% of the channels x20, a 768 -> 768",
            "Linear; SQNR of the output against float64 (dB). Calibrated methods saw four other",
            "batches of the same distribution.",
            "",
            markdown_table(["method", "SQNR dB"], [[k, f"{v:.1f}"] for k, v in sqnr.items()]),
            "",
            "Latency, µs (median, 2 threads, one run): a static Linear (scales fixed by",
            "calibration) against dynamic ones. The last column is dynamic / static.",
            "",
            markdown_table(
                ["M, K, N", "static", "dynamic ONNX", "dynamic per token", "dynamic ONNX / static"],
                rows,
            ),
        ]
    )
    print(text)
    if not args.no_write:
        write_section("static", text)


if __name__ == "__main__":
    main()
