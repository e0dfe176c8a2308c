"""Timing and report helpers shared by the benchmarks.

Medians of many calls (the machine is shared and noisy), ratios taken within one run,
and each runtime timed on its own so that thread pools do not overlap.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("RESULTS.md")


def median_us(fn, repeat: int = 200, warmup: int = 5, min_seconds: float = 0.2) -> float:
    """Median wall time of ``fn()`` in microseconds (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 * repeat:
            break
    return float(np.median(times) * 1e6)


def machine() -> str:
    """One line on the machine and library versions."""
    import numba
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    import numbaq

    info = numbaq.info()
    return (
        f"{cpu} ({info['cpu']}; GEMM path {info['gemm_path']}; AMX: "
        f"{'no' if info['amx'].startswith('not available') else 'yes'}), {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numba {numba.__version__}, numpy {numpy.__version__}"
    )


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of ``benchmarks/RESULTS.md``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# numbaq benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    RESULTS.write_text(text)
