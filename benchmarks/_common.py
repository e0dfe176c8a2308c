"""Timing and report helpers shared by the benchmarks.

Medians of many calls (the machine is shared and noisy), ratios taken within one run,
and each runtime timed on its own so that thread pools do not overlap.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
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


class Peer:
    """A peer runtime in a child process of its own, so that thread pools never overlap.

    The child runs ``source`` with ``mode``, the thread counts (JSON) and ``work`` as its
    arguments; it loads its models, warms them up, prints ``READY {json}`` (with ``runs``:
    its ``[name, threads]`` pairs, and optionally ``skipped``), then answers each request
    line ``[name, threads]`` with ``TIME {json}`` after one timed call, so that all
    runtimes take turns in rounds.

    Parameters
    ----------
    source : str
        The child's Python source.
    mode : str
        Which peer the child is.
    threads : list of int
        The thread counts to serve.
    work : Path
        A folder for the child's files and its stderr log.
    """

    def __init__(self, source: str, mode: str, threads, work: Path):
        self.mode = mode
        self.log = open(work / f"{mode}.stderr", "w+")  # closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", source, mode, json.dumps(threads), str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        ready = self._read("READY ")
        if ready is None:
            error = self.last_error()
            self.close()
            raise RuntimeError(f"skipped {mode}: it failed ({error})")
        self.ready = ready
        self.skipped = [ready["skipped"]] if "skipped" in ready else []
        self.runs = [tuple(r) for r in ready["runs"]]

    def last_error(self) -> str:
        """The last line the child wrote to stderr (at most 200 characters)."""
        self.log.flush()
        self.log.seek(0)
        lines = [x for x in self.log.read().strip().splitlines() if x.strip()]
        return (lines or ["no output"])[-1][:200]

    def _read(self, tag: str):
        """The JSON after the next stdout line starting with ``tag`` (others are the
        libraries' own prints), or None at the end of the output."""
        for line in self.proc.stdout:
            if line.startswith(tag):
                return json.loads(line[len(tag) :])
        return None

    def time(self, name: str, n: int):
        """One timed call of run ``name`` on ``n`` threads: the child's ``TIME`` reply."""
        try:
            self.proc.stdin.write(json.dumps([name, n]) + "\n")
            self.proc.stdin.flush()
        except OSError:
            reply = None
        else:
            reply = self._read("TIME ")
        if reply is None:
            raise RuntimeError(f"{self.mode} stopped: {self.last_error()}")
        return reply

    def close(self):
        """End the child (it exits at the end of its input)."""
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
