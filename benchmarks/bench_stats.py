"""Runtime statistics and dynamic quantization: numbaq against numpy and torch.

Run: ``python -m benchmarks.bench_stats`` (writes the ``stats`` section of RESULTS.md).

Each runtime is timed on its own, one after the other, in one process: numpy first,
then numbaq at 1 and at 2 threads, then torch (if installed).
"""

from __future__ import annotations

import argparse
import warnings

import numba
import numpy as np

import numbaq as nq
from numbaq import reference as ref
from numbaq.kernels import stats as ks

from ._common import machine, markdown_table, median_us, write_section

SHAPES = [(128, 768), (1, 768), (512, 4096)]


def bench(shape, threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    out = {}
    out["numpy x.min() + x.max()"] = median_us(lambda: (x.min(), x.max()))
    out["numpy per-row min + max"] = median_us(lambda: (x.min(axis=1), x.max(axis=1)))
    for name in ("ONNX", "PER_TOKEN_INT8"):
        out[f"numpy reference dynamic_quantize ({name})"] = median_us(
            lambda name=name: ref.dynamic_quantize(x, nq.schemes.get(name)), repeat=30
        )
    for n in threads:
        numba.set_num_threads(n)
        if n == 1:
            out["numbaq min/max kernel (flat), 1T"] = median_us(lambda: ks._minmax_flat(flat))
        else:
            out[f"numbaq min/max kernel (flat), {n}T"] = median_us(
                lambda n=n: ks._minmax_flat_par(flat, n)
            )
        out[f"numbaq minmax(x), {n}T"] = median_us(lambda: nq.minmax(x))
        out[f"numbaq minmax(x, 'row'), {n}T"] = median_us(lambda: nq.minmax(x, "row"))
        for name in ("ONNX", "TORCH", "PER_TOKEN_INT8", "BLOCK_Q8_0"):
            out[f"numbaq dynamic_quantize {name}, {n}T"] = median_us(
                lambda name=name: nq.dynamic_quantize(x, name)
            )
    numba.set_num_threads(max(threads))
    try:
        import torch
    except ImportError:
        return out
    tx = torch.from_numpy(x)
    for n in threads:
        torch.set_num_threads(n)
        out[f"torch min + max, {n}T"] = median_us(lambda: (tx.min(), tx.max()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[f"torch quantize_per_tensor_dynamic, {n}T"] = median_us(
                lambda: torch.quantize_per_tensor_dynamic(tx, torch.quint8, True)
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    nq.warmup()
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    sections = [
        "## Runtime statistics and dynamic quantization",
        "",
        "Command: `python -m benchmarks.bench_stats`. Median microseconds; each runtime timed",
        f"on its own, in one run. Machine: {machine()}.",
        "",
        "`nT` sets Numba's thread count; the public verbs still run serially below",
        f"`config.PARALLEL_MIN` = {nq.config.PARALLEL_MIN} elements, where a `prange` launch",
        "(3-5 us here) costs more than it saves. The flat kernel rows call the kernel directly.",
    ]
    for shape in SHAPES:
        res = bench(shape, threads)
        base = res["numpy x.min() + x.max()"]
        rows = [[name, f"{us:.1f}", f"{base / us:.2f}x"] for name, us in res.items()]
        sections += [
            "",
            f"### x {shape} float32",
            "",
            markdown_table(["method", "us", "vs numpy min+max"], rows),
        ]
    text = "\n".join(sections)
    print(text)
    if not args.no_write:
        write_section("stats", text)


if __name__ == "__main__":
    main()
