"""The README's measured figures, from benchmarks/RESULTS.md: ``python -m benchmarks.readme``.

Reads the sections that the benchmarks write into ``RESULTS.md``, takes a few key figures
from each section of a kind it knows (:data:`KINDS`: ``linear-<path>``, ``minilm-<path>``,
``lstm-<path>``, ``bert``, ``static``), and writes them into the ``## Measured`` section of
``README.md``, between ``<!-- measured:begin -->`` and ``<!-- measured:end -->``. Every
table there names the CPU and the command of the section it came from. Each
``linear-<path>`` section also gets two plots, ``benchmarks/gops-<path>.png`` (end-to-end
GOPS by shape, 1 and 2 threads, against the measured instruction peak) and
``benchmarks/speedup-<path>.png`` (peer time / numbaq time), titled with their CPU.

A section that is absent, or whose tables do not parse, is left out with a note on stderr.
Numbers are copied from RESULTS.md as written there (a range picks its ends; nothing is
recomputed), so the README text depends on RESULTS.md only, and ``tests/
test_readme_figures.py`` checks that the README matches it. ``--check`` writes nothing and
exits with 1 when the README is out of date; ``--no-plots`` leaves the plots alone.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._common import RESULTS, markdown_table
from ._results import Section, Table, Unparsed, parse

HERE = Path(__file__).parent
README = HERE.parent / "README.md"
BEGIN, END = "<!-- measured:begin -->", "<!-- measured:end -->"
PEAK = re.compile(r"^Peak: (.*)$", re.M)
PEAK_ITEM = re.compile(r"(\d+) GOPS on (\d+) threads?")

NOTICE = (
    "<!-- Written by `python -m benchmarks.readme` from benchmarks/RESULTS.md: not by hand. -->"
)
INTRO = (
    "`python -m benchmarks.readme` copies these figures from"
    " [benchmarks/RESULTS.md](benchmarks/RESULTS.md), which holds the full tables and the"
    " commands that made them; `python -m benchmarks` reruns every benchmark and then this"
    " command. The"
    " machine varies between sessions (an AMD EPYC or an Intel Xeon, with or without VNNI"
    " and AMX; `numbaq info` says which), so every table names the CPU it ran on; it is also"
    " shared, so compare the ratios from one run, not times across runs. Times are medians,"
    " the peers timed in the same run, one runtime at a time."
)
WIDTH = 90
"""The README's prose is wrapped at this width (tables and images are not)."""


# ------------------------------------------------------------------ shared helpers
def _num(cell: str) -> float:
    found = re.match(r"-?\d+(\.\d+)?", cell)
    if found is None:
        raise Unparsed(f"not a number: {cell!r}")
    return float(found[0])


def _span(cells: Sequence[str]) -> str | None:
    """``lo-hi`` of numeric cells ("-" ignored), the one value, or None if none."""
    cells = [c for c in cells if c != "-"]
    if not cells:
        return None
    lo, hi = min(cells, key=_num), max(cells, key=_num)
    return lo if lo == hi else f"{lo}-{hi}"


def _threads(n: str) -> str:
    return f"{n} thread" if n == "1" else f"{n} threads"


def _prose(text: str) -> str:
    """``text`` wrapped at :data:`WIDTH`, never inside a word, a code span, a bold span
    (a CPU) or a link, so that each reads, and greps, whole."""
    whole = re.sub(r"`[^`]*`|\*\*[^*]*\*\*|\[[^]]*\]", lambda m: m[0].replace(" ", "\0"), text)
    wrapped = textwrap.fill(whole, WIDTH, break_long_words=False, break_on_hyphens=False)
    return wrapped.replace("\0", " ")


def _caption(section: Section, text: str) -> str:
    """A table's caption: the CPU and the command of its section, then ``text``."""
    return _prose(f"**{section.cpu}** (`{section.command}`, section `{section.name}`): {text}")


def _paragraphs(*parts: str) -> str:
    """The non-empty ``parts``, a blank line apart."""
    return "\n\n".join(p for p in parts if p)


def _markdown(rows: list[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A table of ``rows`` by ``(title, key)`` columns; a column no row fills is left out."""
    kept = [(t, k) for t, k in columns if any(r.get(k) not in (None, "", "-") for r in rows)]
    return markdown_table([t for t, _ in kept], [[r.get(k) or "-" for _, k in kept] for r in rows])


def _by_threads(
    rows: Sequence[dict], key: Callable[[dict], str], values: Sequence[str]
) -> tuple[list[dict], list[str]]:
    """Rows grouped by ``key(row)`` (the first row's cells, and the ``values`` of each
    thread count ``n`` as ``value@n``); and the thread counts, in order."""
    out: dict[str, dict] = {}
    threads: dict[str, None] = {}
    for row in rows:
        threads[row["threads"]] = None
        merged = out.setdefault(key(row), {"key": key(row), **row})
        merged.update({f"{v}@{row['threads']}": row[v] for v in values if v in row})
    return list(out.values()), list(threads)


def _thread_columns(values: Sequence[tuple[str, str]], threads: list[str]) -> list:
    return [(f"{title}, {_threads(n)}", f"{v}@{n}") for title, v in values for n in threads]


# ------------------------------------------------------------------ linear-<path>
SQNR_PEERS = ("torch quantize_dynamic", "ORT dynamic QInt8", "numbaq PER_TOKEN_INT8")
LINEAR_COLUMNS = (
    ("M, K, N", "M, K, N"),
    ("torch `quantize_dynamic`", "torch qdyn"),
    ("ONNX Runtime", "ORT qdyn"),
    ("numbaq", "numbaq"),
    ("torch / numbaq", "vs torch qdyn"),
    ("ORT / numbaq", "vs ORT"),
    ("ORT / numbaq UINT7", "UINT7 vs ORT"),
    ("GEMM core, % of peak", "core"),
    ("SQNR dB, torch / ORT / numbaq", "sqnr"),
)
SPEEDUPS = {
    "vs torch qdyn": "torch qdyn / numbaq",
    "vs ORT": "ORT / numbaq",
    "UINT7 vs ORT": "ORT / numbaq UINT7",
}


def _linear_tables(section: Section) -> dict[str, Table]:
    """The end-to-end tables by thread count (``"1"``, ``"2"``)."""
    tables = {}
    for t in section.tables:
        found = re.fullmatch(r"(\d+) threads?", t.heading)
        if found and {"M, K, N", "GOPS", "vs ORT"} <= set(t.header):
            tables.setdefault(found[1], t)
    if "1" not in tables:
        raise Unparsed("no 1-thread end-to-end table")
    return tables


def _peaks(section: Section) -> dict[str, str]:
    """``{threads: GOPS}`` of the measured instruction peak ({} if not measured)."""
    found = PEAK.search(section.body)
    return {n: gops for gops, n in PEAK_ITEM.findall(found[1])} if found else {}


def _core(section: Section) -> dict[tuple[str, str], str]:
    """``{(shape, threads): "% of peak"}`` of the GEMM core alone."""
    table = section.find_optional(lambda t: "% of peak" in t.header)
    return {(r["M, K, N"], r["threads"]): r["% of peak"] for r in table.rows} if table else {}


def _linear_rows(section: Section, table: Table) -> list[dict]:
    """The rows of the README's table: ``table``'s, with numbaq's time (the faster of its
    two schemes, as its ratios take), the core's % of peak and the SQNRs."""
    core = _core(section)
    sqnr_table = section.find_optional(lambda t: t.heading.startswith("SQNR"))
    sqnr = {r["M, K, N"]: r for r in sqnr_table.rows} if sqnr_table else {}
    rows = []
    for row in table.rows:
        shape, peers = row["M, K, N"], sqnr.get(row["M, K, N"], {})
        numbaq = min(row["numbaq ONNX"], row["numbaq PER_TOKEN"], key=_num)
        joined = " / ".join(peers[p] for p in SQNR_PEERS) if set(SQNR_PEERS) <= set(peers) else ""
        rows.append({**row, "numbaq": numbaq, "core": core.get((shape, "1")), "sqnr": joined})
    return rows


def _linear_notes(section: Section, tables: dict[str, Table]) -> list[str]:
    """Sentences on the peak, the other thread counts and the exactness table."""
    peaks, core, notes = _peaks(section), _core(section), []
    if "1" in peaks:
        notes.append(
            "GEMM core: the int32 core alone (uint8 x int8 -> int32) against the measured"
            f" peak of the path's dot instruction, {peaks['1']} GOPS on 1 thread."
        )
    for n, table in tables.items():
        if n == "1":
            continue
        said = [
            f"{SPEEDUPS[c]} {span}"
            for c in SPEEDUPS
            if c in table.header and (span := _span([r[c] for r in table.rows]))
        ]
        cores = _span([v for (_, t), v in core.items() if t == n])
        if cores and n in peaks:
            said.append(f"GEMM core {cores} of {peaks[n]} GOPS")
        if said:
            notes.append(f"On {_threads(n)}: {', '.join(said)}.")
    exact = section.find_optional(lambda t: "outputs wrong" in t.header)
    if exact:
        wrong = [
            f"{r['runtime']} {r['outputs wrong']}" for r in exact.rows if "Linear" in r["operands"]
        ]
        notes.append(f"{exact.heading}, outputs wrong on a Linear's codes: {', '.join(wrong)}.")
    return notes


def _plot_links(section: Section) -> str:
    return "\n".join(
        f"![{what}, {section.cpu}](benchmarks/{stem}-{section.path}.png)"
        for stem, what in (("gops", "GOPS by shape"), ("speedup", "peer time / numbaq time"))
    )


def linear(section: Section) -> str:
    """The README part of a ``linear-<path>`` section: the 1-thread end-to-end table.

    Parameters
    ----------
    section : Section
        A ``linear-<path>`` section.

    Returns
    -------
    str
        Markdown: a caption, the table, a few sentences and the plots' links.
    """
    tables = _linear_tables(section)
    text = (
        "the whole dynamic Linear (quantize the activations, int8 GEMM, dequantize, bias) on"
        " 1 thread, µs, and its SQNR against float64. numbaq is the faster of its `ONNX` and"
        " `PER_TOKEN_INT8` schemes (SQNR: `PER_TOKEN_INT8`); ratios are peer time / numbaq"
        " time, above 1x where numbaq is faster."
    )
    notes = _prose(" ".join(_linear_notes(section, tables)))
    table = _markdown(_linear_rows(section, tables["1"]), LINEAR_COLUMNS)
    return _paragraphs(_caption(section, text), table, notes, _plot_links(section))


# ------------------------------------------------------------------ minilm-<path>
MINILM = {
    "numbaq int8": "numbaq int8",
    "numbaq fp32": "numbaq fp32",
    "numbaq uint7": "numbaq uint7",
    "onnxruntime int8": "ONNX Runtime int8",
    "openvino int8": "OpenVINO int8",
    "torch int8": "torch int8",
}


def _cosine(section: Section, name: str) -> str | None:
    """``mean / min`` cosine to numbaq fp32 of the first model named ``name``."""
    table = section.find_optional(lambda t: t.header[:3] == ("model", "mean", "min"))
    if table is None or name == "numbaq fp32":
        return "(reference)" if table else None
    rows = [r for r in table.rows if r["model"] == name or r["model"].startswith(f"{name} (")]
    return f"{rows[0]['mean']} / {rows[0]['min']}" if rows else None


def minilm(section: Section) -> str:
    """The README part of a ``minilm-<path>`` section: medians and ratios, and cosines.

    Parameters
    ----------
    section : Section
        A ``minilm-<path>`` section.

    Returns
    -------
    str
        Markdown: a caption and the table.
    """
    table = section.find(lambda t: t.header[0] == "threads (median ms)", "median")
    by = {r["threads (median ms)"]: r for r in table.rows}
    names = [n for n in MINILM if n in table.header]
    if "numbaq int8" not in names:
        raise Unparsed("no numbaq int8 column")
    rows = []
    for n in (k for k in by if k.isdigit()):
        ratio = by[f"{n}: median / numbaq int8"]
        row = {name: f"{by[n][name]} ({ratio[name]})" for name in names}
        rows.append({**row, "key": _threads(n), "numbaq int8": by[n]["numbaq int8"]})
    rows.append({"key": "cosine to fp32, mean / min", **{n: _cosine(section, n) for n in names}})
    text = (
        "encoding the sentences, median ms, with the ratio to numbaq int8's median (above"
        " 1x numbaq int8 is faster); cosine to numbaq fp32's embeddings."
    )
    columns = [("", "key"), *((MINILM[n], n) for n in names)]
    return _paragraphs(_caption(section, text), _markdown(rows, columns))


# ------------------------------------------------------------------ lstm-<path>
def lstm(section: Section) -> str:
    """The README part of an ``lstm-<path>`` section: the ratios to torch's dynamic LSTM.

    Parameters
    ----------
    section : Section
        An ``lstm-<path>`` section.

    Returns
    -------
    str
        Markdown: a caption and the table.
    """
    table = section.find(lambda t: {"layer", "threads", "batch", "ratio"} <= set(t.header), "ratio")
    values = [("torch / numbaq", "ratio"), ("torch / numbaq UINT7", "UINT7 ratio")]
    rows, threads = _by_threads(
        table.rows, lambda r: f"{r['layer']}, batch {r['batch']}", [v for _, v in values]
    )
    text = "torch `quantize_dynamic` time / numbaq time (above 1x numbaq is faster)."
    sqnr = section.find_optional(lambda t: t.header == ("method", "SQNR dB"))
    if sqnr:
        picks = [r for r in sqnr.rows if re.match(r"torch|.*(\(the default\)|UINT7)", r["method"])]
        named = (f"{r['method'].split(' (')[0]} {r['SQNR dB']} dB" for r in picks)
        text += f" SQNR of the output to fp32's: {', '.join(named)}."
    columns = [("layer", "key"), *_thread_columns(values, threads)]
    return _paragraphs(_caption(section, text), _markdown(rows, columns))


# ------------------------------------------------------------------ bert
def _case(heading: str) -> str:
    """A table heading up to its first comma outside parentheses."""
    return re.split(r",\s(?![^()]*\))", heading)[0]


def bert(section: Section) -> str:
    """The README part of the ``bert`` section: numbaq.torch against torch's dynamic int8.

    Parameters
    ----------
    section : Section
        The ``bert`` section.

    Returns
    -------
    str
        Markdown: a caption and the table.
    """
    tables = [t for t in section.tables if "torch.ao / peer" in t.header]
    if not tables:
        raise Unparsed("no torch.ao / peer table")
    rows, threads = [], []
    for table in tables:
        peers = [r for r in table.rows if r["peer"] != "torch fp32"]
        case = _case(table.heading)
        got, threads = _by_threads(
            peers, lambda r, c=case: f"{c}: {r['peer']}", ["torch.ao / peer"]
        )
        rows += [
            {**r, "case": case, "cosine": f"{r['cosine mean']} / {r['cosine min']}"} for r in got
        ]
    text = (
        "torch.ao `quantize_dynamic` time / the peer's (above 1x the peer is faster), and"
        " each token's cosine to fp32's, mean / min."
    )
    columns = [
        ("weights", "case"),
        ("peer", "peer"),
        *_thread_columns([("torch.ao / peer", "torch.ao / peer")], threads),
        ("cosine to fp32", "cosine"),
    ]
    return _paragraphs(_caption(section, text), _markdown(rows, columns))


# ------------------------------------------------------------------ static
def static(section: Section) -> str:
    """The README part of the ``static`` section: SQNR under activation outliers.

    Parameters
    ----------
    section : Section
        The ``static`` section.

    Returns
    -------
    str
        Markdown: a caption and the table.
    """
    table = section.find(lambda t: t.header == ("method", "SQNR dB"), "outlier SQNR")
    text = (
        "activations with a few outlier channels, SQNR (dB) of a Linear's output against"
        " float64 (calibrated methods saw other batches of the same distribution)."
    )
    rows = [list(r.values()) for r in table.rows]
    return _paragraphs(_caption(section, text), markdown_table(list(table.header), rows))


# ------------------------------------------------------------------ the README block
# ------------------------------------------------------------------ llama-<path>
def llama(section: Section) -> str:
    """The README part of a ``llama-<path>`` section: perplexity, prefill and decode of
    each runtime, and numbaq's best scheme against llama.cpp Q8_0.

    Parameters
    ----------
    section : Section
        A ``llama-<path>`` section.

    Returns
    -------
    str
        Markdown: a caption, the runtimes' table and the ratios' table.
    """
    table = section.find(lambda t: t.header[:2] == ("runtime", "perplexity"), "runtimes")
    timed = [h for h in table.header if h.startswith(("prefill ms", "decode tokens/s"))]
    columns = [("runtime", "runtime"), ("perplexity", "perplexity")]
    columns += [(h, h) for h in table.header if h.startswith("vs ") and "numbaq" not in h]
    columns += [(h, h) for h in timed]
    ratios = section.find_optional(
        lambda t: t.header[0] == "threads" and "decode: numbaq scheme" in t.header
    )
    text = (
        "SmolLM2-135M-Instruct: perplexity on 2,048 tokens of English prose, prefill of a"
        " 256-token prompt (median ms) and decode (median tokens/s), every runtime in the"
        " same rounds."
    )
    parts = [_caption(section, text), _markdown(list(table.rows), columns)]
    if ratios is not None:
        parts.append(markdown_table(list(ratios.header), [list(r.values()) for r in ratios.rows]))
    return _paragraphs(*parts)


@dataclass(frozen=True)
class Kind:
    """A kind of RESULTS.md section that the README shows.

    Parameters
    ----------
    prefix : str
        The sections' name, or the part before ``-<path>``.
    title : str
        The README's ``###`` heading over them.
    intro : str
        A fixed sentence or two under the heading (no numbers).
    render : callable
        ``render(section) -> markdown``; raises :class:`Unparsed` (or ``KeyError``,
        ``IndexError``) where the section's tables lack what it needs.
    """

    prefix: str
    title: str
    intro: str
    render: Callable[[Section], str]

    def matches(self, section: Section) -> bool:
        """Whether ``section`` is of this kind."""
        return section.name == self.prefix or section.name.startswith(f"{self.prefix}-")


KINDS = (
    Kind(
        "linear",
        "The dynamic Linear",
        "ONNX Runtime runs its dynamic quantization as one `DynamicQuantizeMatMul`. Without"
        " VNNI, numbaq's 8-bit schemes take the exact `vpmaddwd` step, and the 7-bit"
        " `PER_TOKEN_UINT7` takes `vpmaddubsw`, which saturates on 8-bit codes but not on"
        " 7-bit ones ([docs/guide/hardware.md](docs/guide/hardware.md)).",
        linear,
    ),
    Kind(
        "minilm",
        "all-MiniLM-L6-v2",
        "numbaq encodes ragged batches: no padding rows, and a sentence gets the same"
        " embedding alone as in a batch. ONNX Runtime and OpenVINO run the model exported"
        " to ONNX in length-sorted padded batches (OpenVINO int8 is NNCF's static"
        " quantization), PyTorch one padded batch.",
        minilm,
    ),
    Kind(
        "lstm",
        "LSTM",
        "numbaq splits the hidden units across the cores, each step's gates fused with its"
        " share of `h W_hh^T`; PyTorch runs in a child process (the two thread pools stalled"
        " each other in one).",
        lstm,
    ),
    Kind(
        "bert",
        "A transformers BertModel through numbaq.torch",
        "`numbaq.torch.quantize_dynamic` puts every `nn.Linear` on numbaq and leaves"
        " attention and the rest to PyTorch, padding rows included (only numbaq's own"
        " ragged encoder skips them); torchao's is its eager int8 dynamic quantization.",
        bert,
    ),
    Kind(
        "llama",
        "A Llama-family decoder against llama.cpp",
        "`numbaq.models.llama` on the GGUF file llama.cpp reads; llama.cpp Q8_0 is that file"
        " requantized by llama.cpp's own quantizer. The ratios take numbaq's fastest scheme"
        " that meets its perplexity goal.",
        llama,
    ),
    Kind(
        "static",
        "Activation outliers",
        "`LLM_INT8` keeps the outlier channels in float, `SMOOTHQUANT` moves their range"
        " into the weights, `BLOCK_Q8_0` scales each block of a row on its own.",
        static,
    ),
)


def _why(err: Exception) -> str:
    return str(err) if isinstance(err, Unparsed) else f"{type(err).__name__}: {err}"


def render(sections: Sequence[Section]) -> tuple[list[tuple[Kind, Section, str]], list[str]]:
    """The README parts of the sections of a known kind, and notes on what was left out.

    Parameters
    ----------
    sections : sequence of Section
        From :func:`parse`.

    Returns
    -------
    parts : list of (Kind, Section, str)
        Each rendered section with its kind and markdown, kinds in :data:`KINDS` order.
    notes : list of str
        A line for each kind without a section, each section that did not parse and
        each section of no known kind.
    """
    parts, notes = [], []
    for kind in KINDS:
        mine = [s for s in sections if kind.matches(s)]
        if not mine:
            notes.append(f"no {kind.prefix} section")
        for section in mine:
            try:
                parts.append((kind, section, kind.render(section)))
            except (ValueError, KeyError, IndexError) as err:  # Unparsed is a ValueError
                notes.append(f"{section.name} left out: {_why(err)}")
    known = {s.name for k in KINDS for s in sections if k.matches(s)}
    notes += [f"{s.name}: not a kind the README shows" for s in sections if s.name not in known]
    return parts, notes


def measured_block(text: str) -> str:
    """The README's block, markers included, from a RESULTS.md text.

    Parameters
    ----------
    text : str
        RESULTS.md's text.

    Returns
    -------
    str
        From ``<!-- measured:begin -->`` to ``<!-- measured:end -->``.
    """
    parts, _ = render(parse(text))
    out = [BEGIN, NOTICE, _prose(INTRO)]
    for kind in KINDS:
        mine = [markdown for k, _, markdown in parts if k is kind]
        if mine:
            out += [f"### {kind.title}", _prose(kind.intro), *mine]
    return "\n\n".join([*out, END])


def splice(readme: str, block: str) -> str:
    """``readme`` with ``block`` between its markers, or, where it has none yet, in place
    of the body of its ``## Measured`` section.

    Parameters
    ----------
    readme : str
        README.md's text.
    block : str
        From :func:`measured_block`.

    Returns
    -------
    str
        The new README text.
    """
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    found = re.search(r"^## Measured\n\n(.*?)(?=^## )", readme, re.S | re.M)
    if found is None:
        raise ValueError("README.md has no '## Measured' section followed by another")
    return f"{readme[: found.start(1)]}{block}\n\n{readme[found.end(1) :]}"


def readme_text(results: Path = RESULTS, readme: Path = README) -> str:
    """The README as :func:`main` writes it; writes nothing.

    Parameters
    ----------
    results : Path
        A RESULTS.md file.
    readme : Path
        A README.md file.

    Returns
    -------
    str
        ``readme``'s text with the figures of ``results``.
    """
    return splice(readme.read_text(), measured_block(results.read_text()))


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the README's block and the plots from RESULTS.md.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments (``--check``, ``--no-plots``); ``sys.argv`` if None.

    Returns
    -------
    int
        The exit status: 1 under ``--check`` when the README is out of date, else 0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; 1 if stale")
    parser.add_argument("--no-plots", action="store_true", help="leave the plots alone")
    args = parser.parse_args(argv)
    parts, notes = render(parse(RESULTS.read_text()))
    for note in notes:
        print(f"benchmarks.readme: {note}", file=sys.stderr)
    old, new = README.read_text(), readme_text()
    if args.check:
        print("README.md is", "up to date" if new == old else "out of date")
        return int(new != old)
    if new != old:
        README.write_text(new)
    print("README.md", "rewritten" if new != old else "already up to date")
    if args.no_plots:
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: pip install matplotlib (the plots extra)")
        return 0
    from ._readme_plots import write_plots

    linears = [section for kind, section, _ in parts if kind.prefix == "linear"]
    for path in write_plots(linears):
        print("wrote", path.relative_to(HERE.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
