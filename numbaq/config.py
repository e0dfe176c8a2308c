"""The one place where numbaq's Numba flags and runtime knobs live.

Every kernel in :mod:`numbaq.kernels` is compiled through :func:`jit`, so its
options (caching, error model, fast-math) are set here and nowhere else.

Knobs (read once, at import, from the environment; change them before the first
kernel call):

``NUMBAQ_CACHE`` (default ``1``)
    On-disk caching of compiled kernels (``cache=True``). A second process then
    skips compilation.
``NUMBAQ_PARALLEL_MIN`` (default ``262144``)
    Below this many elements a memory-bound kernel runs serially: launching a
    ``prange`` costs 3-5 us here, more than splitting saves on less than 1 MB
    (measured: 128x768 float32 min/max, 3.9 us serial against 5.1 us on 2 threads).
``NUMBAQ_GEMM_PATH`` (default ``auto``)
    Force an integer GEMM path; see :data:`GEMM_PATH`.
``NUMBAQ_GEMM_PARALLEL_MIN`` (default ``2000000``)
    Multiply-adds below which a GEMM runs on one thread.
``GOMP_SPINCOUNT`` (default set here to ``10000`` if unset)
    How long an idle OpenMP worker spins before it sleeps. libgomp's own default
    (300000 spins, about a millisecond) lets Numba's pool steal the CPUs of a
    torch or OpenBLAS pool in the same process; on two cores that measured up to
    30x slower. 10000 spins (about 10 us) keeps back-to-back kernel calls warm.
    It must be set before the OpenMP runtime loads, which this module does on
    import, unless you set it yourself.

Nothing here compiles anything: kernels compile on first call or in
:func:`numbaq.warmup`.
"""

from __future__ import annotations

import os

import numba

os.environ.setdefault("GOMP_SPINCOUNT", "10000")


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


CACHE: bool = _env_flag("NUMBAQ_CACHE", True)
"""Cache compiled kernels on disk."""

PARALLEL_MIN: int = int(os.environ.get("NUMBAQ_PARALLEL_MIN", "262144"))
"""Element count below which kernels run their serial entry point."""

GEMM_PATH: str = os.environ.get("NUMBAQ_GEMM_PATH", "auto")
"""Integer GEMM path: ``"auto"`` (the fastest the CPU supports) or one of
``"vnni512"``, ``"vnni256"``, ``"avx512bw"``, ``"avx2"``, ``"plain"``; see
:mod:`numbaq.kernels.gemm` and :func:`numbaq.info`. Tests set it to run every path."""

GEMM_PARALLEL_MIN: int = int(os.environ.get("NUMBAQ_GEMM_PARALLEL_MIN", "2000000"))
"""Multiply-adds (M*N*K) below which a GEMM runs on one thread."""

FASTMATH: bool = False
"""Fast-math stays off for every kernel: rounding needs IEEE semantics, and the
min/max reductions are exact integer reductions that vectorize without it."""

JIT_OPTIONS: dict = {
    "cache": CACHE,
    "nogil": True,
    "error_model": "numpy",
    "boundscheck": False,
    "fastmath": FASTMATH,
}


def jit(parallel: bool = False, inline: bool = False):
    """Return the ``numba.njit`` decorator every numbaq kernel is built with.

    Parameters
    ----------
    parallel : bool
        Compile with ``parallel=True`` so ``prange`` loops run on Numba's pool.
    inline : bool
        Inline into callers at Numba's IR level (``inline="always"``): for the GEMM's
        per-panel helpers, whose calls pass a dozen arrays each.
    """
    extra = {"inline": "always"} if inline else {}
    return numba.njit(parallel=parallel, **JIT_OPTIONS, **extra)


def use_parallel(n_elements: int) -> bool:
    """Whether a problem of ``n_elements`` is large enough for the parallel entry point."""
    return n_elements >= PARALLEL_MIN and numba.get_num_threads() > 1
