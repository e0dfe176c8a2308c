"""The README's plots of each ``linear-<path>`` section of RESULTS.md (drawn by
``python -m benchmarks.readme``): end-to-end GOPS by shape against the measured peak, and
peer time / numbaq time, each titled with its CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ._results import Section, Table
from .readme import HERE, SPEEDUPS, _linear_tables, _num, _peaks, _threads


def _title(section: Section, what: str) -> str:
    return f"{what}\n{section.cpu}\n{section.command} (RESULTS.md, {section.name})"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


def _plot_gops(section: Section, tables: dict[str, Table], out: Path) -> Path:
    """End-to-end GOPS by shape, a line per thread count, and the measured peaks."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    peaks = _peaks(section)
    for n, table in tables.items():
        shapes, gops = [r["M, K, N"] for r in table.rows], [_num(r["GOPS"]) for r in table.rows]
        (line,) = ax.plot(shapes, gops, "o-", label=f"numbaq, {_threads(n)}")
        if n in peaks:
            label = f"instruction peak, {_threads(n)}"
            ax.axhline(float(peaks[n]), color=line.get_color(), ls=":", lw=1, label=label)
    ax.set_xlabel("M, K, N")
    ax.set_ylabel("GOPS (int8 Linear, end to end)")
    ax.set_title(_title(section, "numbaq's dynamic Linear, GOPS by shape"), fontsize=9)
    ax.tick_params(axis="x", rotation=20)
    ax.legend(fontsize=8)
    return _save(fig, out / f"gops-{section.path}.png")


def _ratio(cell: str) -> float:
    return float("nan") if cell == "-" else _num(cell)


def _plot_speedup(section: Section, tables: dict[str, Table], out: Path) -> Path:
    """Peer time / numbaq time by shape, a panel per thread count, a bar per peer."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, len(tables), sharey=True, squeeze=False)[0]
    for ax, (n, table) in zip(axes, tables.items()):
        columns = [c for c in SPEEDUPS if c in table.header]
        width = 0.8 / len(columns)
        for i, column in enumerate(columns):
            x = [j + width * i for j in range(len(table.rows))]
            values = [_ratio(r[column]) for r in table.rows]
            ax.bar(x, values, width=width, label=SPEEDUPS[column])
        ticks = [j + width * (len(columns) - 1) / 2 for j in range(len(table.rows))]
        ax.set_xticks(ticks, [r["M, K, N"] for r in table.rows], rotation=35, fontsize=7)
        ax.axhline(1, color="k", lw=0.8)
        ax.set_title(_threads(n), fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("peer time / numbaq time")
    fig.suptitle(_title(section, "numbaq's dynamic Linear against its peers"), fontsize=9)
    return _save(fig, out / f"speedup-{section.path}.png")


def write_plots(sections: Sequence[Section], out: Path = HERE) -> list[Path]:
    """Draw ``gops-<path>.png`` and ``speedup-<path>.png`` for each ``linear-<path>`` section.

    Parameters
    ----------
    sections : sequence of Section
        ``linear-<path>`` sections that :func:`linear` renders.
    out : Path
        The folder written.

    Returns
    -------
    list of Path
        The files written.
    """
    written = []
    for section in sections:
        tables = _linear_tables(section)
        written += [_plot_gops(section, tables, out), _plot_speedup(section, tables, out)]
    return written
