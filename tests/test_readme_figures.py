"""The README's measured figures are generated from benchmarks/RESULTS.md
(``python -m benchmarks.readme``), so they cannot drift from it."""

from pathlib import Path

from benchmarks import readme

ROOT = Path(__file__).resolve().parents[1]

SYNTHETIC = """\
# numbaq benchmark results

<!-- linear-zz:begin -->
## Dynamic quantized Linear (`y = x . W^T + b`)

Command: `python -m benchmarks.bench_linear`. Median µs per call, all methods in one
run. Machine: Acme Widget 9000 (zen9; GEMM path zz; AMX: no), 4 CPUs, Python 3.11.7.

### 1 thread

| M, K, N | torch qdyn | ORT qdyn | numbaq ONNX | numbaq PER_TOKEN | GOPS | vs torch qdyn | vs ORT |
|---|---|---|---|---|---|---|---|
| 1,768,768 | 37 | 13 | 21 | 20 | 59 | 1.85x | 0.65x |
| 32,768,768 | 193 | 79 | 88 | 90 | 428 | 2.19x | 0.90x |

### GEMM core alone (uint8 x int8 -> int32), against the measured instruction peak

Peak: 499 GOPS on 1 thread (`peak_gops`).

| M, K, N | threads | µs | GOPS | % of peak |
|---|---|---|---|---|
| 1,768,768 | 1 | 9 | 129 | 26% |
| 32,768,768 | 1 | 61 | 619 | 97% |
<!-- linear-zz:end -->

<!-- minilm-zz:begin -->
## all-MiniLM-L6-v2, 64 sentences

Command: `python -m benchmarks.bench_minilm`. Machine: Other CPU, 4 CPUs, Python 3.11.7.
No tables this time.
<!-- minilm-zz:end -->
"""

README = "# x\n\n## Measured\n\nHand-written 1.23x.\n\n## Next\n\nKept.\n"


def test_readme_block_is_generated_from_results():
    text = (ROOT / "README.md").read_text()
    assert "## Measured\n\n" + readme.BEGIN in text
    assert readme.readme_text() == text, "stale: run python -m benchmarks.readme"


def test_synthetic_section_names_its_cpu(tmp_path):
    results, target = tmp_path / "RESULTS.md", tmp_path / "README.md"
    results.write_text(SYNTHETIC)
    target.write_text(README)
    text = readme.readme_text(results, target)
    block = text.split(readme.BEGIN)[1].split(readme.END)[0]
    assert "Acme Widget 9000 (zen9; GEMM path zz; AMX: no), 4 CPUs" in block
    assert "`python -m benchmarks.bench_linear`" in block
    assert "| 32,768,768 | 193 | 79 | 88 | 2.19x | 0.90x | 97% |" in block
    assert "benchmarks/gops-zz.png" in block
    assert "Hand-written" not in text and text.endswith("\n\n## Next\n\nKept.\n")
    # a section whose tables do not parse is left out, with a note
    assert "Other CPU" not in block
    _, notes = readme.render(readme.parse(SYNTHETIC))
    assert any(note.startswith("minilm-zz left out") for note in notes)
    # once the markers are in, regenerating gives the same text
    target.write_text(text)
    assert readme.readme_text(results, target) == text
