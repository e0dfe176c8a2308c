"""Plots from benchmarks/RESULTS.md: ``python -m benchmarks.plots``.

``gops.png``: numbaq's end-to-end GOPS by shape, 1 and 2 threads, against the measured
``vpdpbusd`` peak (the ``linear-vnni512`` section). ``speedup.png``: peer time / numbaq
time for each shape and peer.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import RESULTS

HERE = Path(__file__).parent
SECTION = "linear-vnni512"
"""The RESULTS.md section plotted: the Linear on the AVX-512 VNNI machine."""


def _section(name: str) -> str:
    text = RESULTS.read_text()
    return text.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]


def _tables(body: str) -> dict[str, list[dict]]:
    """``{threads: rows}`` of the Linear tables in a section of RESULTS.md."""
    tables = {}
    for heading, table in re.findall(r"### (\d) threads?\n\n(\|.*?)\n\n", body + "\n\n", re.S):
        lines = [row.strip("|").split("|") for row in table.strip().splitlines()]
        header = [h.strip() for h in lines[0]]
        tables[heading] = [dict(zip(header, (c.strip() for c in row))) for row in lines[2:]]
    return tables


def main() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: pip install matplotlib")
        return
    body = _section(SECTION)
    tables = _tables(body)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for threads, rows in sorted(tables.items()):
        ax.plot(
            [r["M, K, N"] for r in rows],
            [float(r["GOPS"]) for r in rows],
            "o-",
            label=f"numbaq, {threads} thread(s)",
        )
    peak = re.search(r"Peak: (\d+) GOPS on 1 thread, (\d+) GOPS on 2", body)
    if peak:
        for value, style in zip(peak.groups(), (":", "--")):
            ax.axhline(float(value), color="0.5", ls=style, lw=1)
    ax.set_ylabel("GOPS (int8 Linear, end to end)")
    ax.set_xlabel("M, K, N")
    ax.legend()
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(HERE / "gops.png", dpi=110)
    fig, axes = plt.subplots(1, len(tables), figsize=(11, 3.5), sharey=True)
    for ax, (threads, rows) in zip(axes, sorted(tables.items())):
        shapes = [r["M, K, N"] for r in rows]
        for i, peer in enumerate(("vs torch qdyn", "vs ORT")):
            values = [float(r[peer].rstrip("x")) if r[peer] != "-" else 0 for r in rows]
            ax.bar([j + 0.4 * i for j in range(len(rows))], values, width=0.4, label=peer)
        ax.axhline(1, color="k", lw=0.8)
        ax.set_xticks([j + 0.2 for j in range(len(rows))], shapes, rotation=35, fontsize=7)
        ax.set_title(f"{threads} thread(s): peer time / numbaq time")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "speedup.png", dpi=110)
    print("wrote", HERE / "gops.png", HERE / "speedup.png")


if __name__ == "__main__":
    main()
