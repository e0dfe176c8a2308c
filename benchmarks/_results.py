"""Parse benchmarks/RESULTS.md: its ``<!-- NAME:begin -->`` sections and their tables.

Used by :mod:`benchmarks.readme`, which copies figures from them into the README.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

SECTION = re.compile(r"<!-- ([\w.-]+):begin -->\n(.*?)\n<!-- \1:end -->", re.S)
MACHINE = re.compile(r"Machine: ([^\n]*?), (\d+ CPUs?)[,.]")
COMMAND = re.compile(r"Command: `([^`]+)`")


class Unparsed(ValueError):
    """A section whose tables do not hold what its kind needs."""


@dataclass(frozen=True)
class Table:
    """A markdown table of a RESULTS.md section.

    Parameters
    ----------
    heading : str
        The ``###`` heading above it, without the hashes ("" if none).
    header : tuple of str
        The column names.
    rows : tuple of dict
        Each row, ``{column: cell}``, cells as written.
    """

    heading: str
    header: tuple[str, ...]
    rows: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Section:
    """One ``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` section of RESULTS.md.

    Parameters
    ----------
    name : str
        Its name, e.g. ``linear-avx2``.
    body : str
        The text between its markers.
    """

    name: str
    body: str

    @property
    def path(self) -> str:
        """The GEMM path in the name (``linear-avx2``: ``avx2``), or the name itself."""
        return self.name.partition("-")[2] or self.name

    @property
    def cpu(self) -> str:
        """The Machine sentence's CPU and CPU count, e.g. ``AMD EPYC (znver4; ...), 2 CPUs``."""
        found = MACHINE.search(self.body)
        return f"{found[1]}, {found[2]}" if found else "an unrecorded CPU"

    @property
    def command(self) -> str:
        """The command that wrote the section."""
        found = COMMAND.search(self.body)
        return found[1] if found else "an unrecorded command"

    @property
    def tables(self) -> list[Table]:
        """Its well-formed markdown tables, in order."""
        return _tables(self.body)

    def find(self, test: Callable[[Table], bool], what: str) -> Table:
        """The first table that passes ``test``; :class:`Unparsed` if none does."""
        table = self.find_optional(test)
        if table is None:
            raise Unparsed(f"no {what} table")
        return table

    def find_optional(self, test: Callable[[Table], bool]) -> Table | None:
        """The first table that passes ``test``, or None."""
        return next((t for t in self.tables if test(t)), None)


def _cells(line: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in line.strip()[1:-1].split("|"))


def _table(heading: str, lines: list[str]) -> Table | None:
    """The table of ``lines``, or None where a row's length differs from the header's."""
    header, *rows = (_cells(line) for line in lines)
    if not rows or set(rows[0]) - {"---", ""} or any(len(r) != len(header) for r in rows):
        return None
    return Table(heading, header, tuple(dict(zip(header, r)) for r in rows[1:]))


def _tables(body: str) -> list[Table]:
    tables, heading, block = [], "", []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            tables.append(_table(heading, block))
            block = []
        if line.startswith("### "):
            heading = line[4:].strip()
    return [t for t in tables if t is not None]


def parse(text: str) -> list[Section]:
    """The sections of a RESULTS.md text.

    Parameters
    ----------
    text : str
        The file's text.

    Returns
    -------
    list of Section
        In the order of the file.

    Examples
    --------
    >>> text = "<!-- x:begin -->\\nMachine: Acme 9 (zen9), 2 CPUs, numpy 2.\\n<!-- x:end -->"
    >>> [(s.name, s.cpu) for s in parse(text)]
    [('x', 'Acme 9 (zen9), 2 CPUs')]
    """
    return [Section(name, body) for name, body in SECTION.findall(text)]
