"""all-MiniLM-L6-v2: numbaq fp32 and int8 against PyTorch fp32 and ``quantize_dynamic``.

Run: ``python -m benchmarks.bench_minilm`` (writes the ``minilm`` section of RESULTS.md).
64 built-in sentences. numbaq runs ragged batches (no padding); PyTorch runs one padded
batch with an attention mask (``numbaq.models.torch_minilm``). Cosine is each sentence's
int8 embedding against the same framework's fp32 embedding; "alone vs in batch" is the
lowest cosine between a sentence encoded alone and inside the batch.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numba
import numpy as np

import numbaq as nq
from numbaq.models import minilm
from numbaq.models.sentences import SENTENCES

from ._common import machine, markdown_table, median_us, write_section


def _cos(a, b):
    return (a * b).sum(axis=1)


TORCH_CHILD = r"""
import json, sys, time, warnings
import numpy as np
import torch
from numbaq.models import torch_minilm
from numbaq.models.sentences import SENTENCES
warnings.simplefilter("ignore")
model, tokenizer = torch_minilm.build()
qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
def median_ms(fn, n=5):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)
out = []
for n in json.loads(sys.argv[1]):
    torch.set_num_threads(n)
    for name, m in (("torch fp32", model), ("torch int8", qmodel)):
        out.append([name, n, median_ms(lambda m=m: torch_minilm.encode(m, tokenizer, SENTENCES))])
print(json.dumps(out))
"""


def _torch_times(threads) -> dict:
    """Timings of the PyTorch models in a child process that never imports numbaq's
    kernels (two OpenMP pools in one process stalled each other here)."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", TORCH_CHILD, json.dumps(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {(r[0], r[1]): r[2] for r in json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not minilm.available():
        print(f"skipped: {minilm.INSTALL}")
        return
    model = minilm.load()
    qmodel = nq.quantize_dynamic(model, progress=False)
    reference = model.encode(SENTENCES)
    int8 = qmodel.encode(SENTENCES)
    threads = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    times: dict = {}
    for n in threads:
        numba.set_num_threads(n)
        times[("numbaq fp32", n)] = median_us(lambda: model.encode(SENTENCES), 5) / 1e3
        times[("numbaq int8", n)] = median_us(lambda: qmodel.encode(SENTENCES), 5) / 1e3
    alone = np.concatenate([qmodel.encode([s]) for s in SENTENCES])
    rows_acc = [
        [
            f"numbaq int8 ({nq.DEFAULT_SCHEME.name}, the default)",
            f"{_cos(reference, int8).mean():.4f}",
            f"{_cos(reference, int8).min():.4f}",
            f"{_cos(alone, int8).min():.6f}",
        ]
    ]
    for scheme in ("PER_TOKEN_INT8", "BLOCK_Q8_0"):
        emb = nq.quantize_dynamic(model, scheme=scheme, progress=False).encode(SENTENCES)
        rows_acc.append(
            [
                f"numbaq int8 ({scheme})",
                f"{_cos(reference, emb).mean():.4f}",
                f"{_cos(reference, emb).min():.4f}",
                "-",
            ]
        )
    try:
        import torch

        from numbaq.models import torch_minilm
    except ImportError:
        torch = None
    if torch is not None:
        time.sleep(0.5)
        tmodel, tokenizer = torch_minilm.build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tq = torch.ao.quantization.quantize_dynamic(
                tmodel, {torch.nn.Linear}, dtype=torch.qint8
            )
        tref = torch_minilm.encode(tmodel, tokenizer, SENTENCES)
        tint8 = torch_minilm.encode(tq, tokenizer, SENTENCES)
        talone = np.concatenate([torch_minilm.encode(tq, tokenizer, [s]) for s in SENTENCES])
        rows_acc.append(
            [
                "torch quantize_dynamic",
                f"{_cos(tref, tint8).mean():.4f}",
                f"{_cos(tref, tint8).min():.4f}",
                f"{_cos(talone, tint8).min():.6f}",
            ]
        )
        times.update(_torch_times(threads))
    lengths = [len(i) for i in model.tokenize(SENTENCES)]
    padding = 1 - sum(lengths) / (len(lengths) * max(lengths))
    names = sorted(
        {k for k, _ in times}, key=["numbaq fp32", "numbaq int8", "torch fp32", "torch int8"].index
    )
    rows = [[n, *(f"{times[(name, n)]:.1f}" for name in names)] for n in threads]
    for n in threads:
        ours = times[("numbaq int8", n)]
        ratios = [f"{times[(name, n)] / ours:.2f}x" for name in names]
        rows.append([f"{n}: time / numbaq int8", *ratios])
    text = "\n".join(
        [
            "## all-MiniLM-L6-v2, 64 sentences",
            "",
            "Command: `python -m benchmarks.bench_minilm`. Median ms to encode all 64 sentences;",
            "numbaq in this process, PyTorch in a child process that does not run numbaq's",
            f"kernels (their thread pools stalled each other in one). Machine: {machine()}.",
            f"A padded batch of these sentences is {100 * padding:.0f}% padding; numbaq's ragged",
            "batches skip it.",
            "",
            markdown_table(["threads", *names], rows),
            "",
            "Cosine to the fp32 embedding of the same sentence:",
            "",
            markdown_table(["int8 model", "mean", "min", "alone vs in batch (min)"], rows_acc),
        ]
    )
    print(text)
    if not args.no_write:
        write_section("minilm", text)


if __name__ == "__main__":
    main()
