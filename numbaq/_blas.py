"""Park the idle worker threads of the process's OpenBLAS pools before a parallel kernel.

After each multithreaded call, OpenBLAS's workers keep polling for work for
``2**OPENBLAS_THREAD_TIMEOUT`` cycles (default ``2**28``: about 70 ms at 3.7 GHz),
yielding the CPU but never sleeping. A parallel numbaq kernel launched in that window
shares its cores with them: on a 2-core Zen 4, all-MiniLM-L6-v2's int8 encode took 89 ms
right after a few numpy matmuls against 44 ms without them (41 ms with the pool parked
first), which made ``numbaq demo``, which alternates numpy's fp32 model with numbaq's
int8 one, time int8 slower than fp32.

:func:`park` calls each loaded OpenBLAS's own ``blas_thread_shutdown_``, which ends its
workers (a no-op, about a microsecond, when they are already gone); OpenBLAS starts them
again on its next multithreaded call (measured: 0.1-0.2 ms, once, on a 4 ms matmul).
numpy's results do not change: only its idle threads go. The engine parks before every
parallel GEMM kernel, so a notebook that alternates numpy and numbaq calls keeps numbaq at
full speed.
``NUMBAQ_PARK_BLAS=0`` turns it off (:mod:`numbaq.config`).

OpenBLAS's shutdown is not safe while another thread is inside OpenBLAS, so :func:`park`
acts only from the main thread while every other Python thread is a daemon (Jupyter's
kernel threads are; ``threading`` and ``concurrent.futures`` workers, Dask's included,
are not): a process that may run numpy in a worker thread keeps its pool as it is.
"""

from __future__ import annotations

import ctypes
import threading
import time

from . import config

_RESCAN_SECONDS = 2.0  # libraries loaded later (scipy.linalg) are found within this
_shutdowns: list = []
_scanned_at = -1e9


def _openblas_paths() -> list[str]:
    """Paths of the OpenBLAS builds mapped into this process (numpy's, scipy's, ...)."""
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:  # not Linux
        return []
    found = {line.split(None, 5)[-1] for line in lines if "openblas" in line.lower()}
    return sorted(p for p in found if p.startswith("/") and ".so" in p)


def _scan() -> None:
    global _shutdowns, _scanned_at
    _scanned_at = time.monotonic()
    functions = []
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
            shutdown = lib.blas_thread_shutdown_
        except (OSError, AttributeError):  # an OpenBLAS without it, or not loadable
            continue
        shutdown.restype = ctypes.c_int
        shutdown.argtypes = []
        functions.append(shutdown)
    _shutdowns = functions


def park() -> int:
    """End the idle worker threads of every loaded OpenBLAS (they restart on demand).

    Returns
    -------
    int
        How many OpenBLAS libraries were asked: 0 where none is loaded, where
        ``config.PARK_BLAS`` is off, or where another thread might be inside OpenBLAS
        (module notes).

    Examples
    --------
    >>> park() >= 0
    True
    """
    if not config.PARK_BLAS or not _alone():
        return 0
    if time.monotonic() - _scanned_at > _RESCAN_SECONDS:
        _scan()
    for shutdown in _shutdowns:
        shutdown()
    return len(_shutdowns)


def _alone() -> bool:
    """Whether this is the main thread and every other Python thread a daemon."""
    main = threading.main_thread()
    if threading.current_thread() is not main:
        return False
    return all(t is main or t.daemon for t in threading.enumerate())
