"""The on-disk kernel cache is keyed on every kernel file (numbaq._cache)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numbaq
from numbaq import _cache

# Runs _activate (kernels/epilogue.py), which calls _gelu (kernels/mathf.py): a
# cross-file call, which Numba's own stamp (the defining file only) would not see.
PROBE = """
import numpy as np
from numbaq.kernels.epilogue import _activate
print(float(_activate(np.float32(1.0), 2)), bool(_activate.stats.cache_hits))
"""


def _run(root: Path) -> tuple[float, bool]:
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBAQ_CACHE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    value, hit = done.stdout.split()
    return float(value), hit == "True"


def test_editing_a_callee_in_another_file_invalidates_the_cache(tmp_path):
    package = Path(numbaq.__file__).parent
    shutil.copytree(package, tmp_path / "numbaq", ignore=shutil.ignore_patterns("__pycache__"))
    gelu, hit = _run(tmp_path)
    assert not hit and abs(gelu - 0.8413447) < 1e-6  # compiled, then cached
    assert _run(tmp_path) == (gelu, True)  # served from the cache
    mathf = tmp_path / "numbaq" / "kernels" / "mathf.py"
    text = mathf.read_text()
    old = "return _HALF * x * (_ONE + _erf(x * _INV_SQRT2))"
    assert old in text
    mathf.write_text(text.replace(old, "return x"))  # only the callee's file changes
    assert _run(tmp_path) == (1.0, False)  # recompiled: the new callee, not stale code


def test_the_digest_covers_every_kernel_file(tmp_path, monkeypatch):
    """Any edit to a kernel file (generated ones too) or config.py changes the digest;
    other modules do not take part."""
    package = tmp_path / "numbaq"
    shutil.copytree(Path(numbaq.__file__).parent, package)
    monkeypatch.setattr(_cache, "_ROOT", package)

    def digest_after(edit=None):
        if edit is not None:
            (package / edit).write_text((package / edit).read_text() + "\n# edited\n")
        _cache.kernel_digest.cache_clear()
        return _cache.kernel_digest()

    try:
        seen = [digest_after()]
        for edit in ("kernels/_tiles_plain.py", "kernels/mathf.py", "config.py"):
            seen.append(digest_after(edit))
        assert len(set(seen)) == len(seen)
        assert digest_after("ops.py") == seen[-1]  # not a kernel source
    finally:
        _cache.kernel_digest.cache_clear()
