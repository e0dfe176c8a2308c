"""Integer GEMM: kernel paths, weight packing, and the portable plain path.

Paths, fastest first (``PATHS``); each is a module with the same four kernels
(``gemm_i32``, ``gemm_i32_par``, ``linear_f32``, ``linear_f32_par``):

=========  ==================================  ===================================
path       instruction                          needs
=========  ==================================  ===================================
vnni512    ``vpdpbusd zmm`` (64 MAC / instr)    avx512vnni, avx512bw
vnni256    ``vpdpbusd ymm``                     avx512vnni + avx512vl, or avxvnni
avx512bw   ``vpmaddwd zmm`` on int16-widened    avx512bw
avx2       ``vpmaddwd ymm`` on int16-widened    avx2
plain      plain Numba loops                    nothing
=========  ==================================  ===================================

The path is chosen in Python from the CPU's features *before* any kernel that uses
it compiles: compiling ``vpdpbusd`` for a CPU without VNNI aborts the process
(an LLVM error, not a Python exception). Features come from ``NUMBA_CPU_FEATURES``
when set (so an older CPU can be emulated), else from llvmlite's host query.

Weights are packed once per path (:func:`pack`): panels of ``PANEL`` output
columns; inside a panel, for each group of 4 consecutive K values, ``NR`` vectors
of ``LANES`` lanes, each lane holding one column's 4 K values (``vnni`` layout) or,
for ``vpmaddwd``, K values 0,1 of all lanes then 2,3 (``pairs`` layout).
"""

from __future__ import annotations

import importlib
from functools import cache

import numba
import numpy as np
from numba import prange

from ..config import jit
from .epilogue import _activate

PATHS = ("vnni512", "vnni256", "avx512bw", "avx2", "plain")

_NEEDS = {
    "vnni512": [{"avx512vnni", "avx512bw", "avx512f"}],
    "vnni256": [{"avx512vnni", "avx512vl"}, {"avxvnni"}],
    "avx512bw": [{"avx512bw", "avx512f"}],
    "avx2": [{"avx2"}],
    "plain": [set()],
}


@cache
def cpu_features() -> frozenset[str]:
    """CPU features LLVM compiles for: ``NUMBA_CPU_FEATURES`` if set, else the host's."""
    override = numba.config.CPU_FEATURES
    if override:
        return frozenset(f[1:] for f in override.split(",") if f.startswith("+"))
    from llvmlite import binding

    return frozenset(k for k, v in binding.get_host_cpu_features().items() if v)


def supported(path: str, features: frozenset[str] | None = None) -> bool:
    """Whether the CPU (or ``features``) can run ``path``."""
    features = cpu_features() if features is None else features
    return any(need <= features for need in _NEEDS[path])


def resolve(requested: str = "auto", features: frozenset[str] | None = None):
    """``(path, reason)``: the path to run for a request of ``"auto"`` or a path name.

    Raises ``ValueError`` for an unknown name or a path this CPU cannot run (it would
    abort the process when compiled).
    """
    features = cpu_features() if features is None else features
    if requested != "auto":
        if requested not in PATHS:
            raise ValueError(f"gemm path must be 'auto' or one of {PATHS}, got {requested!r}")
        if not supported(requested, features):
            raise ValueError(
                f"gemm path {requested!r} needs CPU features "
                f"{' or '.join(sorted(map(str, _NEEDS[requested])))}, which this CPU lacks; "
                f"it can run {[p for p in PATHS if supported(p, features)]}"
            )
        return requested, "forced by numbaq.config.GEMM_PATH"
    for path in PATHS:
        if supported(path, features):
            if path == "plain":
                return path, "no AVX2, AVX-512BW or VNNI on this CPU"
            return (
                path,
                f"fastest path this CPU supports ({', '.join(sorted(features & _all_needed()))})",
            )
    raise AssertionError("unreachable: 'plain' needs nothing")


def _all_needed() -> set[str]:
    return set().union(*(need for needs in _NEEDS.values() for need in needs))


def module(path: str):
    """The kernel module of ``path`` (imported, not compiled)."""
    return importlib.import_module(f"{__package__}._tiles_{path}")


def geometry(path: str) -> tuple[int, int, str]:
    """``(LANES, NR, LAYOUT)`` of a path; plain is one row-major column at a time."""
    if path == "plain":
        return 1, 1, "rows"
    lanes, _, nr, _, layout, _ = _gen_params(path)
    return lanes, nr, layout


def m_block(m: int, n: int, path: str, threads: int, max_rows: int = 256) -> int:
    """Rows per parallel task, a multiple of the tile height.

    Tasks are (column panel, block of rows). Whole panels (all ``m`` rows, at most
    ``max_rows`` so a block of activations stays in L2) when there are enough panels
    for every thread to get two; otherwise the rows are split too. Equal blocks keep
    the static schedule of ``prange`` balanced: 48-row blocks measured 11% slower at
    M=128 (48 + 48 + 32 rows) on two threads.
    """
    lanes, nr, _ = geometry(path)
    mr = 1 if path == "plain" else _gen_params(path)[1]
    n_panels = -(-n // (nr * lanes))
    blocks = max(-(-m // max_rows), -(-2 * threads // n_panels), 1)
    rows = -(-m // blocks)
    return -(-rows // mr) * mr


def _gen_params(path: str):
    from ._gen_gemm import PATHS as GENERATED

    return GENERATED[path]


def pack(w: np.ndarray, path: str) -> np.ndarray:
    """Pack int8 weights ``w`` (N, K) for ``path``: a 1-D int8 array, zero padded.

    K is padded to a multiple of 4 and N to a multiple of the panel width.
    """
    n, k = w.shape
    lanes, nr, layout = geometry(path)
    kq = -(-k // 4)
    if layout == "rows":
        out = np.zeros((n, 4 * kq), np.int8)
        out[:, :k] = w
        return out.reshape(-1)
    panel = nr * lanes
    n_panels = -(-n // panel)
    padded = np.zeros((n_panels * panel, 4 * kq), np.int8)
    padded[:n, :k] = w
    if layout == "vnni":  # [panel][kq][vector][lane][4 K values]
        blocks = padded.reshape(n_panels, nr, lanes, kq, 4).transpose(0, 3, 1, 2, 4)
    else:  # pairs: [panel][kq][vector][K pair][lane][2 K values]
        blocks = padded.reshape(n_panels, nr, lanes, kq, 2, 2).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(blocks).reshape(-1)


# ------------------------------------------------------------------ the plain path
# The GEMM entry points of the plain path, with the generated modules' signatures;
# ``_tiles_plain.py`` (generated) adds the model drivers on top. ``w`` is row-major
# (N, 4 * kq_n), flat.
LAYOUT = "rows"


@jit()
def _dot_row(a, a_off, w, w_off, k):
    """``sum_k a[a_off + k] * w[w_off + k]``, uint8 x int8 -> int32 (wrapping).

    Written so LLVM vectorizes it (51 GOPS here against 1.3 for the naive loop):
    sliced views, int16 products (exact: 255 * 128 < 2**15), an explicit int32 sum.
    """
    av = a[a_off : a_off + k]
    wv = w[w_off : w_off + k]
    s = np.int32(0)
    for i in range(k):
        s = np.int32(s + np.int16(av[i]) * np.int16(wv[i]))
    return s


@jit()
def gemm_i32(a, lda, m, w, kq_n, n, out):
    """Raw int32 dot products ``out[i, j] = sum_k a[i, k] * w[j, k]``, plain loops."""
    k = 4 * kq_n
    for i in range(m):
        for j in range(n):
            out[i, j] = _dot_row(a, i * lda, w, j * k, k)


@jit(parallel=True)
def gemm_i32_par(a, lda, m, w, kq_n, n, out, m_block):
    """Parallel twin of :func:`gemm_i32`, over rows (``m_block`` unused)."""
    k = 4 * kq_n
    for i in prange(m):
        for j in range(n):
            out[i, j] = _dot_row(a, i * lda, w, j * k, k)


@jit()
def _linear_row(a, lda, i, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y):
    k = 4 * kq_n
    for j in range(n):
        acc = np.int32(_dot_row(a, i * lda, w, j * k, k) - a_zp[i] * col_sums[j])
        y[i, j] = _activate(np.float32(acc) * (a_scale[i] * w_scale[j]) + bias[j], act)


@jit()
def linear_f32(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y):
    """Dequantizing linear over plain loops; see :mod:`numbaq.kernels.epilogue`."""
    for i in range(m):
        _linear_row(a, lda, i, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y)


@jit(parallel=True)
def linear_f32_par(a, lda, m, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y, m_block):
    """Parallel twin of :func:`linear_f32`, over rows (``m_block`` unused)."""
    for i in prange(m):
        _linear_row(a, lda, i, w, kq_n, n, a_scale, a_zp, w_scale, col_sums, bias, act, y)


# ------------------------------------------------------- scales per block of K
@jit()
def _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y):
    k, block = 4 * kq_n, 4 * block_kq
    for j in range(n):
        total = np.float32(0.0)
        for b in range(kq_n // block_kq):
            raw = _dot_row(a, i * lda + b * block, w, j * k + b * block, block)
            dot = np.int32(raw - 128 * block_sums[b, j])
            total += np.float32(dot) * (a_scale[i, b] * w_scale[b, j])
        y[i, j] = _activate(total + bias[j], act)


@jit()
def linear_blocks_f32(a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y):
    """Scales per block of K over plain loops (as the generated paths): ``y = sum_b
    float32(dot_b - 128 * block_sums[b, n]) * (a_scale[m, b] * w_scale[b, n]) + bias``;
    ``w_scale`` and ``block_sums`` are (blocks, N)."""
    for i in range(m):
        _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y)


@jit(parallel=True)
def linear_blocks_f32_par(
    a, lda, m, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y, m_block
):
    """Parallel twin of :func:`linear_blocks_f32`, over rows (``m_block`` unused)."""
    for i in prange(m):
        _blocks_row(a, lda, i, w, kq_n, n, block_kq, a_scale, w_scale, block_sums, bias, act, y)
