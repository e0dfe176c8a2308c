"""Dynamically quantized LSTM and LSTMCell against PyTorch, in one run.

Run: ``python -m benchmarks.bench_lstm`` (writes the ``lstm-<path>`` section of RESULTS.md,
``<path>`` the GEMM path in use).
LSTM: input 256, hidden 512, 64 steps, batch 1 and 16; LSTMCell: one step, same sizes.
torch fp32, torch ``quantize_dynamic`` (qint8) and numbaq (the default: per-channel
int8 weights, per-token activations) on 1 and 2 threads, each runtime timed on its
own; also numbaq under the 7-bit ``PER_TOKEN_UINT7`` (UINT7). SQNR of the 64-step output
against the fp32 LSTM, for each method.
"""

from __future__ import annotations

import argparse
import warnings

import numba
import numpy as np

import numbaq as nq

from ._common import machine, markdown_table, median_us, write_section

INPUT, HIDDEN, STEPS = 256, 512, 64


def _torch_models():
    import torch

    torch.manual_seed(0)
    lstm, cell = torch.nn.LSTM(INPUT, HIDDEN), torch.nn.LSTMCell(INPUT, HIDDEN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qlstm = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(lstm), {torch.nn.LSTM}, dtype=torch.qint8
        )
        qcell = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(cell), {torch.nn.LSTMCell}, dtype=torch.qint8
        )[0]
    return lstm, cell, qlstm, qcell


TORCH_CHILD = r"""
import json, sys, time, warnings
import numpy as np
import torch
warnings.simplefilter("ignore")
threads, batches = json.loads(sys.argv[1])
torch.manual_seed(0)
lstm, cell = torch.nn.LSTM(256, 512), torch.nn.LSTMCell(256, 512)
qlstm = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lstm), {torch.nn.LSTM},
                                               dtype=torch.qint8)
qcell = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(cell), {torch.nn.LSTMCell},
                                               dtype=torch.qint8)[0]
def median_us(fn, n):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e6)
out = []
for n in threads:
    torch.set_num_threads(n)
    for b in batches:
        x = np.random.default_rng(0).standard_normal((64, b, 256)).astype(np.float32)
        tx = torch.from_numpy(x)
        with torch.inference_mode():
            for name, model, c in (("torch fp32", lstm, cell), ("torch qdyn", qlstm, qcell)):
                out.append([name, n, b, "LSTM", median_us(lambda: model(tx), 10)])
                out.append([name, n, b, "LSTMCell", median_us(lambda: c(tx[0]), 50)])
print(json.dumps(out))
"""


def _torch_times(threads, batches) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", TORCH_CHILD, json.dumps([threads, batches])],
        capture_output=True,
        text=True,
        check=True,
    )
    return {tuple(row[:4]): row[4] for row in json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import torch

    lstm, cell, qlstm, _ = _torch_models()
    u7 = "PER_TOKEN_UINT7"  # 7-bit activations: the exact vpmaddubsw step without VNNI
    ours = {
        ("numbaq", "LSTM"): nq.quantize_dynamic(nq.from_torch(lstm)),
        ("numbaq", "LSTMCell"): nq.quantize_dynamic(nq.from_torch(cell)),
        ("numbaq uint7", "LSTM"): nq.quantize_dynamic(nq.from_torch(lstm), scheme=u7),
        ("numbaq uint7", "LSTMCell"): nq.quantize_dynamic(nq.from_torch(cell), scheme=u7),
    }
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    times: dict = {}
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((STEPS, b, INPUT)).astype(np.float32) for b in (1, 16)}
    nq.warmup()
    for n in threads:  # numbaq first, then torch: one runtime at a time
        numba.set_num_threads(n)
        for b, x in inputs.items():
            for (name, layer), model in ours.items():
                step = x if layer == "LSTM" else x[0]
                times[(name, n, b, layer)] = median_us(
                    lambda m=model, s=step: m(s), 10 if layer == "LSTM" else 50
                )
    # torch runs in a child process that never imports numbaq: its OpenMP pool and
    # Numba's stalled each other in one process (one run measured torch 10x slower)
    times.update(_torch_times(threads, list(inputs)))
    x = inputs[16]
    with torch.inference_mode():
        reference = lstm(torch.from_numpy(x))[0].numpy()
        torch_q = qlstm(torch.from_numpy(x))[0].numpy()
    float_lstm = nq.from_torch(lstm)
    torch_label = "torch quantize_dynamic (per-tensor weights, 7-bit per-tensor activations)"
    sqnr = {torch_label: nq.metrics.sqnr(reference, torch_q)}
    for scheme in ("PER_TOKEN_UINT8", "PER_TOKEN_INT8", u7, "ONNX", "TORCH"):
        out = nq.quantize_dynamic(float_lstm, scheme=scheme)(x)[0]
        default = " (the default)" if scheme == nq.DEFAULT_SCHEME.name else ""
        label = f"numbaq {scheme}{default}"
        sqnr[f"{label} (per-channel int8 weights)"] = nq.metrics.sqnr(reference, out)
    lines = [
        "## Dynamic LSTM (input 256, hidden 512, 64 steps)",
        "",
        "Command: `python -m benchmarks.bench_lstm`. Median µs per call (a whole sequence for",
        "LSTM, one step for LSTMCell); numbaq in this process, then PyTorch in a child",
        "process that never imports numbaq (their thread pools stalled each other in one).",
        f"Machine: {machine()}. Ratio: torch qdyn time / numbaq time.",
        "",
    ]
    rows = []
    for layer in ("LSTM", "LSTMCell"):
        for n in threads:
            for b in inputs:
                t = {
                    name: times[(name, n, b, layer)]
                    for name in ("torch fp32", "torch qdyn", "numbaq", "numbaq uint7")
                }
                rows.append(
                    [
                        layer,
                        n,
                        b,
                        f"{t['torch fp32']:.0f}",
                        f"{t['torch qdyn']:.0f}",
                        f"{t['numbaq']:.0f}",
                        f"{t['torch qdyn'] / t['numbaq']:.2f}x",
                        f"{t['numbaq uint7']:.0f}",
                        f"{t['torch qdyn'] / t['numbaq uint7']:.2f}x",
                    ]
                )
    lines.append(
        markdown_table(
            [
                *("layer", "threads", "batch", "torch fp32", "torch qdyn", "numbaq", "ratio"),
                *("numbaq UINT7", "UINT7 ratio"),
            ],
            rows,
        )
    )
    lines += ["", "SQNR of the 64-step output (batch 16) against the fp32 LSTM:", ""]
    lines.append(markdown_table(["method", "SQNR dB"], [[k, f"{v:.1f}"] for k, v in sqnr.items()]))
    text = "\n".join(lines)
    print(text)
    if not args.no_write:  # one section per GEMM path: the machines differ
        write_section(f"lstm-{nq.gemm_path()[0]}", text)


if __name__ == "__main__":
    main()
