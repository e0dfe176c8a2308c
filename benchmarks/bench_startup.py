"""Start-up cost: import plus the first dynamic Linear in a fresh process.

Run: ``python -m benchmarks.bench_startup`` (writes the ``startup`` section of RESULTS.md).
A first process runs ``numbaq.warmup()`` so the on-disk cache is warm (parallel kernels
included); then fresh processes time ``import numbaq`` and the first
``quantized_linear`` (M=128, K=N=768, the parallel path on two threads).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from ._common import machine, markdown_table, write_section

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import numbaq as nq
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.standard_normal((128, 768)).astype(np.float32)
qw = nq.quantize_weight(rng.standard_normal((768, 768)).astype(np.float32))
nq.quantized_linear(x, qw)
t2 = time.perf_counter()
nq.quantized_linear(x, qw)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2}))
"""


def main(argv=None) -> None:
    subprocess.run([sys.executable, "-c", "import numbaq; numbaq.warmup()"], check=True)
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(5)
    ]
    rows = [
        [key, f"{np.median([r[key] for r in runs]):.3f}"] for key in ("import", "first", "second")
    ]
    text = "\n".join(
        [
            "## Start-up with a warm on-disk cache",
            "",
            "Command: `python -m benchmarks.bench_startup`. Median of 5 fresh processes, seconds.",
            "`first` is `quantize_weight` plus the first `quantized_linear` (128 x 768 x 768,",
            f"parallel kernels), loaded from the cache. Machine: {machine()}.",
            "",
            markdown_table(["step", "seconds"], rows),
        ]
    )
    print(text)
    write_section("startup", text)


if __name__ == "__main__":
    main()
