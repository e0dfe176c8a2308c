"""Where a quantized Linear's time goes, against the measured peak of the GEMM path.

A dynamic Linear ``y = act(dequantize(quantize(x) . q_w^T) + bias)`` is four pieces:

* **quantize**: the activations' runtime statistics, qparams and codes (one pass over x);
* **core**: the int32 GEMM on the integer units (``vpdpbusd`` on VNNI CPUs);
* **epilogue**: dequantizing the int32 tiles, the bias and the activation (ReLU, GELU);
* **rest**: everything else in the call: Python, checks, allocation.

:func:`linear_pieces` times each piece alone on the running CPU, on the shape and weights
of a real layer; :func:`peak_gops` measures the peak of the path's dot instruction (a
register tile of independent chains, operands in L1), so each time reads as a share of
what the hardware can do. :func:`numbaq.models.bert.roofline` applies both to every Linear
of an encoder; :func:`figure` draws the result.

Examples
--------
>>> import numbaq
>>> row = linear_pieces(numbaq.quantize_weight(np.ones((64, 32), np.float32)), 8, repeat=3)
>>> sorted(row)[:4]
['activation', 'core_gops', 'core_us', 'epilogue_us']
"""

from __future__ import annotations

import functools
import time

import numba
import numpy as np
from numba import prange

from . import config, engine, schemes
from .kernels import gemm as kg
from .kernels import paths, simd
from .kernels.epilogue import SHIFT
from .kernels.quantize import _quantize_lhs
from .matmul import ACTIVATIONS, QuantizedWeight

PIECES = ("quantize", "core", "epilogue", "rest")


# ------------------------------------------------------------------ the instruction peak
@functools.cache
def _peak_kernel(path: str):
    """A kernel running ``path``'s dot step (``kernels.simd``) on the path's own register
    tile, ``MR x NR`` independent accumulators, with its operands loaded from argument
    arrays at offsets that change every iteration, so that LLVM can neither fold nor
    hoist a multiply (``vpmaddwd`` multiplies apart from its add). Made from source, as
    the number of accumulators is the path's (compiled once per process, not cached)."""
    spec = paths.get(path)
    lanes, vbytes, mr, nr = spec.lanes, 4 * spec.lanes, spec.mr, spec.nr
    acc = [f"c{r}_{v}" for r in range(mr) for v in range(nr)]
    src = [
        "def body(iters, a, w, out):",
        *(f"    {c} = zero()" for c in acc),
        "    for i in range(iters):",
        "        o = i & 7",
        *(f"        x{r} = bcast(a, 4 * o + {32 * r})" for r in range(mr)),
        *(f"        b{v} = load(w, (o + {8 * v}) * {vbytes})" for v in range(nr)),
        *(f"        c{r}_{v} = dot(c{r}_{v}, x{r}, b{v})" for r in range(mr) for v in range(nr)),
        *(f"    store(out, {i * lanes}, {c})" for i, c in enumerate(acc)),
    ]
    names = {op: getattr(simd, f"{op}{lanes}") for op in ("zero", "load", "bcast", "store")}
    names["dot"] = getattr(simd, f"{spec.dot}{lanes}")
    exec(compile("\n".join(src), f"<peak kernel {path}>", "exec"), names)
    one = numba.njit(**config.JIT_OPTIONS)(names["body"])

    @numba.njit(parallel=True, **config.JIT_OPTIONS)
    def run(iters, a, w, out):
        for t in prange(out.shape[0]):
            one(iters, a, w, out[t])

    return run


@functools.cache
def _amx_peak_kernel():
    """A kernel running ``tdpbusd`` on four independent C tiles with A and B loaded once
    (registers only), one register file per thread: the AMX path's instruction peak.
    Compiles the AMX intrinsics: call it only where the ``amx`` path runs."""
    from .kernels import amx_hw as hw

    @numba.njit(parallel=True, **config.JIT_OPTIONS)
    def run(iters, a, b, out):
        for t in prange(out.shape[0]):
            state, cfg = hw.registers()
            cfg[0] = 1
            for tile in range(8):
                cfg[16 + 2 * tile] = 64
                cfg[48 + tile] = 16
            hw.ldtilecfg(state, cfg)
            hw.tileloadd(state, 4, a, 0, 64)
            hw.tileloadd(state, 5, b, 0, 64)
            hw.tilezero(state, 0)
            hw.tilezero(state, 1)
            hw.tilezero(state, 2)
            hw.tilezero(state, 3)
            for _ in range(iters):
                hw.tdpbusd(state, 0, 4, 5)
                hw.tdpbusd(state, 1, 4, 5)
                hw.tdpbusd(state, 2, 4, 5)
                hw.tdpbusd(state, 3, 4, 5)
            row = out[t]
            hw.tilestored(state, 0, row, 0, 16)
            hw.tilestored(state, 1, row, 256, 16)
            hw.tilestored(state, 2, row, 512, 16)
            hw.tilestored(state, 3, row, 768, 16)
            hw.tilerelease(state)

    return run


def _amx_peak_gops(threads: int, iters: int, runs: int) -> float:
    """:func:`peak_gops` of the ``amx`` path: 4 x 16 x 16 x 64 multiply-adds a step."""
    run = _amx_peak_kernel()
    out = np.zeros((threads, 1024), np.int32)
    a = kg._aligned(np.full(1024, 3, np.uint8))
    b = kg._aligned(np.full(1024, 5, np.int8))
    run(10, a, b, out)
    return threads * iters * 4 * 16 * 16 * 64 * 2 / _fastest_s(runs, run, iters, a, b, out) / 1e9


def _fastest_s(runs: int, fn, *args) -> float:
    """The fastest of ``runs`` calls of ``fn(*args)``, in seconds (on a shared machine a
    long run rarely finds the core quiet throughout)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def peak_gops(
    path: str | None = None, threads: int = 1, iters: int = 2_000_000, runs: int = 10
) -> float:
    """Measured throughput of ``path``'s dot instruction, in GOPS (a multiply-add is 2).

    Parameters
    ----------
    path : str, optional
        A GEMM path this CPU runs; default the one in use (:func:`numbaq.gemm_path`).
    threads : int
        Threads running the kernel at once (one register tile each).
    iters, runs : int
        Dot steps per run; the fastest of ``runs`` runs counts (on a shared machine a
        long run rarely finds the core quiet throughout). Cached per process.

    Returns
    -------
    float
        ``threads * iters * MR * NR * 4 * lanes * 2 / seconds / 1e9``.

    Raises
    ------
    ValueError
        For the ``plain`` path (scalar code) and ``amx_emulated`` (the twin has no
        instruction to measure); for ``amx`` where it does not run.

    Notes
    -----
    The path's ``MR x NR`` register tile of independent accumulator chains, operands
    from L1: the rate the instruction allows, which a GEMM can at best approach. On a
    Zen 4 core ``vpdpbusd zmm`` measured 468 GOPS; ``vpmaddwd`` (avx2) 115-127. For
    ``amx``: ``tdpbusd`` on four C tiles from one A and one B tile (a probe measured
    7.1-7.4 TOPS a core on a Xeon; never run by numbaq yet).

    Examples
    --------
    >>> import numbaq
    >>> path = numbaq.gemm_path()[0]
    >>> path == "plain" or peak_gops(path, 1, iters=10_000, runs=2) > 1
    True
    """
    path = engine.gemm_path()[0] if path is None else path
    spec = paths.get(path)
    if spec.tile == "amx" and spec.ops == "amx_hw":
        if path not in paths.available():
            raise ValueError(f"peak_gops: the amx path does not run here: {paths.amx_status()}")
        return _amx_peak_gops(threads, max(1, iters // 16), runs)
    if not spec.simd or spec.tile != "simd":
        raise ValueError(
            f"peak_gops: the {path} path has no SIMD dot instruction on a register tile to measure"
        )
    run = _peak_kernel(path)
    out = np.zeros((threads, spec.mr * spec.nr * spec.lanes), np.int32)
    # arguments, so LLVM cannot fold the loads; 64-byte aligned, as packed weights are
    a = kg._aligned(np.full(32 * spec.mr + 32, 3, np.uint8))
    w = kg._aligned(np.full((8 * spec.nr + 8) * 4 * spec.lanes, 5, np.int8))
    run(1000, a, w, out)
    best = _fastest_s(runs, run, iters, a, w, out)
    return threads * iters * spec.mr * spec.nr * 4 * spec.lanes * 2 / best / 1e9


# ------------------------------------------------------------------ one Linear, in pieces
def median_us(fn, repeat: int = 30) -> float:
    """The median time of ``repeat`` calls of ``fn()`` in µs (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def linear_pieces(
    qweight: QuantizedWeight,
    m: int,
    scheme=None,
    activation: str | None = None,
    total_us: float | None = None,
    quantize_fused: bool = False,
    repeat: int = 15,
    seed: int = 0,
) -> dict:
    """Time the pieces of one dynamic Linear, ``m`` rows through ``qweight``, on this CPU.

    Parameters
    ----------
    qweight : QuantizedWeight
        The layer's (N, K) weights (per channel).
    m : int
        Rows (tokens) of the activation.
    scheme : QScheme or str, optional
        Activation scheme, per token or per tensor (default ``PER_TOKEN_UINT8``).
    activation : {None, "relu", "gelu"}
        Fused into the epilogue.
    total_us : float, optional
        The Linear's measured time where it ran (in a model); default: the layer call
        (the fused dynamic Linear) timed here.
    quantize_fused : bool
        The activations came quantized from the op before (a LayerNorm that writes the
        Linear's codes): ``total_us`` holds no quantize pass, and ``quantize_us`` is 0.
    repeat : int
        Timed calls of each piece; medians count.
    seed : int
        Random activations (the pieces' times do not depend on the values).

    Returns
    -------
    dict
        ``m``, ``k``, ``n``, ``activation``, ``path``, ``quantize_us``, ``core_us`` (the
        int32 GEMM alone), ``epilogue_us`` (GEMM with the dequantizing epilogue minus the
        core), ``rest_us`` (``total_us`` minus the three), ``total_us``, ``gops``
        (``2 m k n / total``), ``core_gops`` and ``peak_gops`` (:func:`peak_gops` on one
        thread per thread in use; NaN on the ``plain`` and AMX paths).

    Notes
    -----
    ``total = quantize + core + epilogue + rest``; the share of the peak is
    ``gops / peak_gops``. Each piece runs the same kernels as the fused Linear with the
    same thread count, so the split is exact up to timing noise and cache effects (the
    fused call finds ``x``'s codes in cache; ``rest`` can come out slightly negative).

    Examples
    --------
    >>> import numbaq
    >>> row = linear_pieces(numbaq.quantize_weight(np.ones((64, 32), np.float32)), 8, repeat=3)
    >>> parts = sum(row[f"{p}_us"] for p in PIECES)
    >>> bool(abs(parts - row["total_us"]) < 1e-6 * row["total_us"])
    True
    """
    sch = schemes.resolve(scheme)
    if sch.granularity not in ("row", "tensor") or qweight.group_size:
        raise ValueError(
            "linear_pieces: the scheme must be per token or per tensor and the weights per "
            f"channel, got {sch.name} with group_size={qweight.group_size}"
        )
    if activation not in ACTIVATIONS:
        raise ValueError(f"linear_pieces: activation must be one of {list(ACTIVATIONS)}")
    n, k = qweight.shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = qweight.zero_bias
    act = ACTIVATIONS[activation]
    lhs = engine.lhs_params(sch)
    path = engine.lhs_kernels(lhs.signed, lhs.qmax)[0]
    a = engine.lhs_buffer(m, k)
    a_scale = np.empty(m, np.float32)
    a_zp = np.empty(m, np.int32)
    quantize_us = median_us(lambda: _quantize_lhs(x, lhs, a, a_scale, a_zp), repeat)
    if quantize_fused:
        quantize_us = 0.0
    a_zp -= SHIFT if lhs.signed else 0  # the scheme's own zero points
    acc = np.empty((m, n), np.int32)
    y = np.empty((m, n), np.float32)
    core_us = median_us(lambda: engine.gemm_i32(a, qweight.packed(path), n, acc, path), repeat)
    gemm_us = median_us(
        lambda: engine.linear(a, a_scale, a_zp, lhs.signed, qweight, bias, act, y, lhs.qmax),
        repeat,
    )
    if total_us is None:
        total_us = median_us(lambda: engine.dynamic_linear(x, sch, qweight, bias, act, y), repeat)
    ops = 2.0 * m * k * n
    threads = config.num_threads() if m * n * k >= config.GEMM_PARALLEL_MIN else 1
    return {
        "m": m,
        "k": k,
        "n": n,
        "activation": activation,
        "quantize_fused": quantize_fused,
        "path": path,
        "quantize_us": quantize_us,
        "core_us": core_us,
        "epilogue_us": gemm_us - core_us,
        "rest_us": total_us - quantize_us - gemm_us,
        "total_us": total_us,
        "gops": ops / total_us / 1e3,
        "core_gops": ops / core_us / 1e3,
        "peak_gops": peak_gops(path, threads)
        if paths.get(path).tile == "simd" and paths.get(path).simd
        else float("nan"),
    }


def _peak_or_nan(path: str, threads: int) -> float:
    spec = paths.get(path)
    measurable = spec.simd and (spec.tile == "simd" or spec.ops == "amx_hw")
    return peak_gops(path, threads) if measurable else float("nan")


def figure(rows: list[dict], title: str = "", ax=None):
    """A horizontal stacked bar per Linear: quantize, core, epilogue, rest (µs), and a tick
    at the time the path's peak would take (``2 m k n / peak``). Needs matplotlib.

    Parameters
    ----------
    rows : list of dict
        :func:`linear_pieces` rows (with a ``name`` key where there is one).
    title : str
        The axes' title (say which CPU, path and threads).
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib Figure
        The figure drawn on.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numbaq
    >>> row = linear_pieces(numbaq.quantize_weight(np.ones((64, 32), np.float32)), 8, repeat=3)
    >>> len(figure([row], "one Linear").axes)
    1
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    else:
        fig = ax.figure
    labels = [r.get("name") or f"{r['m']}x{r['k']}->{r['n']}" for r in rows]
    left = np.zeros(len(rows))
    for piece in PIECES:
        width = np.array([max(r[f"{piece}_us"], 0.0) for r in rows])
        ax.barh(labels, width, left=left, label=piece)
        left += width
    ideal = [2.0 * r["m"] * r["k"] * r["n"] / r["peak_gops"] / 1e3 for r in rows]
    ax.scatter(ideal, labels, marker="|", s=200, color="black", label="at the peak", zorder=3)
    ax.invert_yaxis()
    ax.set_xlabel("µs")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=5, fontsize="small")
    fig.tight_layout()
    return fig
