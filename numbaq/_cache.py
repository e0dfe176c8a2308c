"""Numba's on-disk cache, keyed on every kernel source file rather than one.

Numba stamps a cached function with its *own* file only (modification time and size,
then a hash): edit ``kernels/epilogue.py`` and a cached GEMM driver in
``kernels/_tiles_vnni512.py`` that inlined the old epilogue would still load, stale
machine code. numbaq's kernels call each other across files, so every cache entry of
a numbaq kernel is stamped with its own file's stamp *and* a digest of all kernel
sources (``kernels/*.py``, ``config.py``, this file): any edit there invalidates every
entry, and nothing stale is ever served.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

_ROOT = Path(__file__).resolve().parent
_SOURCES = ("config.py", "_cache.py", "kernels/*.py")


@functools.cache
def kernel_digest() -> str:
    """SHA-256 over the names and contents of every kernel source file (once per process)."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in _SOURCES for p in _ROOT.glob(pattern)):
        digest.update(path.relative_to(_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamped(locator: type) -> type:
    """``locator`` (a Numba cache locator class) whose stamp adds :func:`kernel_digest`."""

    def get_source_stamp(self):
        return (locator.get_source_stamp(self), kernel_digest())

    return type(f"Numbaq{locator.__name__}", (locator,), {"get_source_stamp": get_source_stamp})


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = tuple(map(_stamped, caching.CompileResultCacheImpl._locator_classes))


class KernelCache(caching.FunctionCache):
    """Numba's function cache with numbaq's stamp (see the module docstring)."""

    _impl_class = _Impl


def enable(dispatcher):
    """Cache ``dispatcher`` (a Numba ``njit`` dispatcher) on disk under numbaq's stamp."""
    dispatcher._cache = KernelCache(dispatcher.py_func)
    return dispatcher
