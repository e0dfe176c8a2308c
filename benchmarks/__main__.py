"""``python -m benchmarks``: every benchmark, each in its own process, then the README.

Each benchmark writes its own section of ``benchmarks/RESULTS.md``. They run one after
the other in separate processes: a torch or ONNX Runtime thread pool left alive by one
benchmark slowed Numba's pool in the next when they shared a process. ``readme`` then
reads the sections back, rewrites the README's measured figures and draws
``benchmarks/gops-<path>.png`` and ``benchmarks/speedup-<path>.png`` (matplotlib, the
``plots`` extra).
"""

import subprocess
import sys

BENCHMARKS = [
    "bench_stats",
    "bench_startup",
    "bench_linear",
    "bench_lstm",
    "bench_minilm",
    "bench_bert",
    "bench_static",
    "bench_llama",
    "readme",
]

for name in BENCHMARKS:
    print(f"== benchmarks.{name}", flush=True)
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=True)
