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
``NUMBAQ_GEMV_PARALLEL_MIN`` (default ``262144``)
    Weight bytes from which a one-row product (a decoder's step) runs on all threads
    anyway: it streams its weights from memory, and two cores read faster than one.
``NUMBAQ_PARK_BLAS`` (default ``1``)
    Before a parallel GEMM, end the idle workers of the process's OpenBLAS pools, which
    otherwise poll for up to ~70 ms after each numpy call and take the cores from
    numbaq's threads (2x slower measured); see :mod:`numbaq._blas`.
``GOMP_SPINCOUNT`` (default set here to ``10000`` if unset)
    How long an idle OpenMP worker spins before it sleeps. libgomp's own default
    (300000 spins, about a millisecond) lets Numba's pool steal the CPUs of a
    torch or OpenBLAS pool in the same process; on two cores that measured up to
    30x slower. 10000 spins (about 10 us) keeps back-to-back kernel calls warm.
    It must be set before the OpenMP runtime loads, which this module does on
    import, unless you set it yourself.

Thread and fork safety (:func:`num_threads`): numbaq runs its parallel kernels only
where Numba's threading layer allows it. In a process forked after a parallel call
under GNU OpenMP (``omp``, Numba's default on Linux without TBB), whose pool does not
survive ``fork()``, every kernel runs serially; under ``workqueue`` (not thread-safe)
only the main thread runs parallel kernels, other Python threads run serially. ``tbb``
is both thread- and fork-safe.

Nothing here compiles anything: kernels compile on first call or in
:func:`numbaq.warmup`.
"""

from __future__ import annotations

import os
import threading

import numba

from ._cache import enable as enable_disk_cache

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
"""Integer GEMM path: ``"auto"`` (the fastest the CPU supports) or one of ``"amx"``
(where its self-check passed), ``"vnni512"``, ``"vnni256"``, ``"avx512bw"``, ``"avx2"``,
``"plain"``, and
``"amx_emulated"`` (the AMX kernels on numbaq's twin of the tile instructions: any CPU,
slowly; never chosen by ``auto``); see :mod:`numbaq.kernels.paths` and
:func:`numbaq.info`. Tests set it to run every path."""

PARK_BLAS: bool = _env_flag("NUMBAQ_PARK_BLAS", True)
"""Park idle OpenBLAS workers before a parallel GEMM (:func:`numbaq._blas.park`)."""

GEMM_PARALLEL_MIN: int = int(os.environ.get("NUMBAQ_GEMM_PARALLEL_MIN", "2000000"))
"""Multiply-adds (M*N*K) below which a GEMM runs on one thread."""

GEMV_PARALLEL_MIN: int = int(os.environ.get("NUMBAQ_GEMV_PARALLEL_MIN", "262144"))
"""Weight bytes (N*K) from which a product of one row runs in parallel, whatever
:data:`GEMM_PARALLEL_MIN` says: memory-bound, it gains from a second core's bandwidth."""

FASTMATH: bool = False
"""Fast-math stays off for every kernel: rounding needs IEEE semantics, and the
min/max reductions are exact integer reductions that vectorize without it."""

JIT_OPTIONS: dict = {
    "cache": False,  # on-disk caching goes through numbaq._cache (see jit), when CACHE
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

    With ``CACHE``, the on-disk cache entry of every kernel is keyed on all kernel
    source files, not only its own (:mod:`numbaq._cache`), so an edit to a kernel
    that others call never serves stale machine code.
    """
    extra = {"inline": "always"} if inline else {}
    options = {**JIT_OPTIONS, **extra}

    def decorate(py_func):
        dispatcher = numba.njit(parallel=parallel, **options)(py_func)
        return enable_disk_cache(dispatcher) if CACHE else dispatcher

    return decorate


def use_parallel(n_elements: int) -> bool:
    """Whether a problem of ``n_elements`` is large enough for the parallel entry point."""
    return n_elements >= PARALLEL_MIN and num_threads() > 1


_serial_only = False  # set in a child forked after the GNU OpenMP pool started
_layer: str | None = None  # Numba's threading layer, once it is loaded


def _threading_layer() -> str | None:
    global _layer
    if _layer is None:
        from numba.np.ufunc import parallel

        _layer = parallel._threading_layer  # None until the layer loads
    return _layer


def num_threads() -> int:
    """Threads numbaq's parallel kernels may use from the calling thread: ``1`` where a
    parallel launch would abort the process, else ``numba.get_num_threads()``.

    ``1`` in a child process forked after the parent used GNU OpenMP (its pool cannot
    run there), and, under the ``workqueue`` layer (which cannot run two parallel
    launches at once), in every Python thread but the main one. Callers then take the
    serial entry points (:func:`use_parallel`).

    Returns
    -------
    int
        Threads for a parallel kernel launched from the calling thread (1: run serially).

    Examples
    --------
    >>> 1 <= num_threads() <= numba.config.NUMBA_NUM_THREADS
    True
    """
    return numba.get_num_threads() if parallel_safe() else 1


def parallel_safe() -> bool:
    """Whether a parallel kernel (``jit(parallel=True)``) may be launched from here.

    Returns
    -------
    bool
        False in a child forked after GNU OpenMP started in the parent, and in a
        non-main Python thread under the ``workqueue`` layer; else True.

    Examples
    --------
    >>> parallel_safe()  # the main thread of a process that was not forked
    True
    """
    if _serial_only:
        return False
    if _layer is None:
        numba.get_num_threads()  # loads the threading layer on first use
    return not (
        _threading_layer() == "workqueue"
        and threading.current_thread() is not threading.main_thread()
    )


def _after_fork_in_child() -> None:
    """GNU OpenMP's pool does not survive ``fork()``: if the parent started it, Numba
    aborts the child at its first parallel launch, so the child runs serially."""
    global _serial_only
    from numba.np.ufunc import parallel

    if parallel._is_initialized and parallel._threading_layer == "omp":
        from numba.np.ufunc import omppool

        if getattr(omppool, "openmp_vendor", "GNU") != "GNU":
            return  # Intel's OpenMP survives fork()
        _serial_only = True
        numba.set_num_threads(1)  # also numba's own parallel code in this thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
