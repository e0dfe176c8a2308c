"""The GEMM engine: the one caller of the generated integer GEMM kernels.

Every integer product in numbaq (``matmul_integer``, the dynamic and static Linear,
block scales, the LSTM/GRU recurrence) goes through this module, which

* resolves the path once per ``config.GEMM_PATH`` value (:func:`gemm_path`, from the
  registry in :mod:`numbaq.kernels.paths`) and finds its kernel module;
* turns a scheme into the kernels' one parameter record
  (:class:`~numbaq.kernels.quantize.LhsParams`), passed to the kernels as a plain tuple:
  Numba's dispatcher types a plain tuple in C and a NamedTuple in Python (measured: 2.1
  against 0.8 us a call), and the kernels rebuild the NamedTuple inside;
* lays out the lhs: uint8, K padded to a multiple of 4, int8 codes shifted by
  ``SHIFT = 128`` (:func:`shift_lhs`), and turns the kernels' *effective* zero points
  (``zero_point + SHIFT`` for int8 codes) back into the scheme's own;
* picks the serial or parallel kernel and the parallel task size (:func:`m_block`).

Functions here take validated arrays (C-contiguous, right dtypes and shapes); the
public verbs in :mod:`numbaq.matmul` and the layers check them first.
"""

from __future__ import annotations

import functools
import importlib
import math

import numpy as np

from . import config
from ._blas import park as park_blas
from .checks import raise_nonfinite
from .kernels import paths
from .kernels.epilogue import SHIFT
from .kernels.quantize import LhsParams
from .kernels.rnn import gate_order
from .qparams import QScheme
from .schemes import BLOCK_Q8_0


@functools.cache
def lhs_params(sch: QScheme) -> LhsParams:
    """The :class:`~numbaq.kernels.quantize.LhsParams` of activation scheme ``sch`` (made
    once per scheme).

    Examples
    --------
    >>> from numbaq import schemes
    >>> lhs_params(schemes.get("PER_TOKEN_INT8")).signed
    True
    """
    smin, smax = sch.scale_range
    qmin, qmax = sch.clamp_range
    return LhsParams(
        sch.granularity == "tensor",
        int(smin),
        int(smax),
        int(qmin),
        int(qmax),
        bool(sch.symmetric),
        sch.rule == "torch",
        bool(sch.reciprocal),
        sch.storage is np.int8,
    )


@functools.cache
def _lhs_tuple(sch: QScheme) -> tuple:
    """:func:`lhs_params` as the plain tuple the kernels take."""
    return tuple(lhs_params(sch))


# ------------------------------------------------------------------ paths
def gemm_path() -> tuple[str, str]:
    """``(path, reason)``: the integer GEMM path in use, from ``config.GEMM_PATH``.

    Returns
    -------
    path : str
        One of ``"amx"``, ``"vnni512"``, ``"vnni256"``, ``"avx512bw"``, ``"avx2"``,
        ``"plain"``, ``"amx_emulated"`` (forced only).
    reason : str
        Why: the CPU features that chose it, or that ``config.GEMM_PATH`` forced it.

    Raises
    ------
    ValueError
        If ``config.GEMM_PATH`` names an unknown path or one this CPU cannot run.

    Examples
    --------
    >>> import numbaq
    >>> path, reason = numbaq.gemm_path()
    >>> path in numbaq.info()["gemm_paths_available"]
    True
    """
    return _resolve(config.GEMM_PATH)


@functools.cache
def _resolve(requested: str) -> tuple[str, str]:
    return paths.resolve(requested)


@functools.cache
def _module(path: str):
    return importlib.import_module(f"numbaq.kernels._tiles_{path}")


def _kernels(path: str | None):
    """``(path, kernel module)``: ``path``, or the configured one (imported, not compiled)."""
    path = gemm_path()[0] if path is None else path
    return path, _module(path)


def lhs_kernels(signed: bool, qmax: int):
    """:func:`_kernels` of the configured path for an lhs of codes up to ``qmax``: its
    7-bit companion (``paths.SEVEN_BIT``) when the bytes the tiles read stay in [0, 127]
    (int8 codes are stored ``+ SHIFT``)."""
    return _kernels(paths.for_lhs(gemm_path()[0], qmax + (SHIFT if signed else 0)))


def _scheme_kernels(sch: QScheme):
    """:func:`lhs_kernels` for activations quantized under ``sch``."""
    lhs = lhs_params(sch)
    return lhs_kernels(lhs.signed, lhs.qmax)


def m_block(m: int, n: int, path: str, threads: int, max_rows: int = 256) -> int:
    """Rows per parallel task, a multiple of the tile height.

    Tasks are (column panel, block of rows). Whole panels (all ``m`` rows, at most
    ``max_rows`` so a block of activations stays in L2) when there are enough panels
    for every thread to get two; otherwise the rows are split too. Equal blocks keep
    the static schedule of ``prange`` balanced: 48-row blocks measured 11% slower at
    M=128 (48 + 48 + 32 rows) on two threads.

    Examples
    --------
    >>> m_block(128, 3072, "vnni512", 2)  # 48 panels: whole panels, 128 rows -> 22 tiles of 6
    132
    """
    spec = paths.get(path)
    n_panels = -(-n // spec.panel)
    blocks = max(-(-m // max_rows), -(-2 * threads // n_panels), 1)
    rows = -(-m // blocks)
    return -(-rows // spec.mr) * spec.mr


def _plan(m: int, n: int, k: int, path: str) -> int:
    """``m_block`` for the parallel kernel, or 0 to run the serial one."""
    if m * n * k < config.GEMM_PARALLEL_MIN and not (m == 1 and n * k >= config.GEMV_PARALLEL_MIN):
        return 0
    threads = config.num_threads()  # 1 where a parallel launch is unsafe (fork, workqueue)
    if threads < 2:
        return 0
    park_blas()  # idle OpenBLAS workers would poll on the cores these threads need
    return m_block(m, n, path, threads)


# ------------------------------------------------------------------ the lhs
def lhs_buffer(m: int, k: int) -> np.ndarray:
    """A uint8 lhs (M, 4 * ceil(K / 4)) whose K padding is zeroed."""
    a = np.empty((m, 4 * -(-k // 4)), np.uint8)
    a[:, k:] = 0
    return a


def shift_lhs(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """``(a, shift)``: integer codes (M, K) uint8 or int8 as the GEMM's uint8 lhs.

    int8 codes are stored ``codes + SHIFT`` (the sign bit flipped), uint8 as they are;
    ``shift`` (0 or ``SHIFT``) is what the zero points must add.

    Examples
    --------
    >>> a, shift = shift_lhs(np.array([[-128, 0, 127]], np.int8))
    >>> a.tolist(), shift
    ([[0, 128, 255, 0]], 128)
    """
    m, k = codes.shape
    a = lhs_buffer(m, k)
    if codes.dtype == np.int8:
        np.bitwise_xor(codes.view(np.uint8), SHIFT, out=a[:, :k])
        return a, SHIFT
    a[:, :k] = codes
    return a, 0


def shift_rhs(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """``(w, shift)``: integer codes (K, N) uint8 or int8 as the GEMM's int8 rhs, (N, K).

    uint8 codes are stored ``codes - SHIFT`` (the sign bit flipped), int8 as they are;
    ``shift`` (0 or ``SHIFT``) is what the zero points must subtract.
    """
    if codes.dtype == np.uint8:
        return np.ascontiguousarray((codes ^ np.uint8(SHIFT)).view(np.int8).T), SHIFT
    return np.ascontiguousarray(codes.T), 0


# ------------------------------------------------------------------ the kernels
def gemm_i32(a, w_packed, n: int, out, path: str | None = None, block: int | None = None):
    """Raw int32 products ``out = a . w^T`` (wrapping) of a uint8 lhs and packed weights.

    Parameters
    ----------
    a : (M, lda) uint8
        The lhs, ``lda`` a multiple of 4 with zeroed padding (:func:`shift_lhs`).
    w_packed : 1-D int8
        Weights (N, K) packed for ``path`` (``kernels.gemm.pack``).
    n : int
        Output columns.
    out : (M, N) int32
        Written in full.
    path : str, optional
        A path this CPU runs; default the configured one.
    block : int, optional
        Force the parallel kernel with tasks of ``block`` rows (tests); default by size.
    """
    path, mod = _kernels(path)
    m, lda = a.shape
    args = (a.reshape(-1), lda, m, w_packed, lda // 4, n, out)
    block = _plan(m, n, lda, path) if block is None else block
    if block:
        mod.gemm_i32_par(*args, block)
    else:
        mod.gemm_i32(*args)
    return out


def linear(
    a, a_scale, a_zero_point, signed: bool, qweight, bias, act: int, y, lhs_max: int = 255
) -> None:
    """The dequantizing Linear on a quantized lhs: ``y = dequantize(a . q_w^T) + bias``.

    ``a`` (M, lda) uint8 from :func:`shift_lhs` or a quantize kernel; ``a_scale``,
    ``a_zero_point`` (M,) the rows' parameters (the scheme's own zero points;
    ``signed`` adds ``SHIFT``); ``y`` (M, N) float32. See ``kernels.epilogue``.
    ``lhs_max``: the largest code ``a`` can hold (its scheme's ``qmax``); 127 lets the
    7-bit companion path run on uint8 codes.
    """
    path, mod = lhs_kernels(signed, lhs_max)
    (m, lda), n = a.shape, qweight.shape[0]
    a_zp = np.asarray(a_zero_point, np.int32) + (SHIFT if signed else 0)
    args = (
        *(a.reshape(-1), lda, m, qweight.packed(path), lda // 4, n),
        *(a_scale, a_zp, qweight.scale, qweight.col_sums, bias, act, y),
    )
    block = _plan(m, n, lda, path)
    if block:
        mod.linear_f32_par(*args, block)
    else:
        mod.linear_f32(*args)


def prepared_linear(sch: QScheme, qweight, bias, act: int) -> tuple:
    """The GEMM call of a dynamic Linear whose activations a producer (a norm, attention,
    SwiGLU) quantizes itself under ``sch``: ``(lhs, path, module, static)``, made once
    and kept with the weights' derived data (:meth:`QuantizedWeight.derived`); run it
    with :func:`linear_prepared`. At M = 1 the lookups it saves cost as much as a small
    kernel (``numbaq.models.llama``'s decode step)."""
    key = ("prepared", config.GEMM_PATH, id(sch), id(bias), act)
    entry = qweight.derived(key, _make_prepared, sch, qweight, bias, act)
    if entry[0] is not sch or entry[1] is not bias:  # ids of objects since collected
        qweight.forget(key)
        entry = qweight.derived(key, _make_prepared, sch, qweight, bias, act)
    return entry[2:]


def _make_prepared(sch: QScheme, qweight, bias, act: int) -> tuple:
    lhs = lhs_params(sch)
    path, mod = lhs_kernels(lhs.signed, lhs.qmax)
    n, k = qweight.shape
    static = (qweight.packed(path), -(-k // 4), n, qweight.scale, qweight.col_sums, bias, act)
    return (sch, bias, lhs, path, mod, static)


def bound_linear(prepared: tuple, a, a_scale, a_zp_effective, y) -> tuple:
    """``(kernel, args)``: the GEMM call of :func:`prepared_linear` on these buffers, the
    serial or parallel kernel chosen for their size (:func:`linear_prepared` runs it; a
    decode loop keeps it and calls it again on new contents of the same buffers).

    ``a`` (M, lda) uint8 codes, ``a_scale`` (M,) float32 and ``a_zp_effective`` (M,) int32
    as the quantize kernels write them (``zero_point + SHIFT`` for int8 codes), ``y``
    (M, N) float32.
    """
    _, path, mod, (packed, kq_n, n, w_scale, col_sums, bias, act) = prepared
    m, lda = a.shape
    args = (a.reshape(-1), lda, m, packed, kq_n, n, a_scale, a_zp_effective, w_scale, col_sums)
    block = _plan(m, n, lda, path)
    if block:
        return mod.linear_f32_par, (*args, bias, act, y, block)
    return mod.linear_f32, (*args, bias, act, y)


def linear_prepared(prepared: tuple, a, a_scale, a_zp_effective, y) -> None:
    """:func:`linear` through a :func:`prepared_linear` call (arguments as for
    :func:`bound_linear`)."""
    kernel, args = bound_linear(prepared, a, a_scale, a_zp_effective, y)
    kernel(*args)


def _dynamic_call(sch: QScheme, qweight):
    """``(sch, path, module, signed, args)`` of the fused dynamic Linear for ``qweight``
    under ``sch`` on the configured path: everything in the kernel call that does not
    change from call to call, made once and kept with the weights' other derived arrays.

    At M = 1 the per-call lookups it replaces (path, scheme record, packing) cost 3 us
    of a 40 us Linear. The entry keeps ``sch`` itself, so its ``id`` stays unique.
    """
    key = ("dynamic", config.GEMM_PATH, id(sch))
    entry = qweight.derived(key, _make_dynamic_call, sch, qweight)
    if entry[0] is not sch:  # the id of a scheme since collected, reused by another
        qweight.forget(key)
        entry = qweight.derived(key, _make_dynamic_call, sch, qweight)
    return entry


def _make_dynamic_call(sch: QScheme, qweight):
    path, mod = _scheme_kernels(sch)
    n, k = qweight.shape
    args = (_lhs_tuple(sch), qweight.packed(path), -(-k // 4), n)
    return (sch, path, mod, lhs_params(sch).signed, (*args, qweight.scale, qweight.col_sums))


def dynamic_linear(x2d, sch: QScheme, qweight, bias, act: int, y):
    """The fused dynamic Linear: quantize ``x2d`` under ``sch``, the tiles, the epilogue.

    ``x2d`` (M, K) float32, ``y`` (M, N) float32. Returns the runtime ``(scale,
    zero_point)`` (M,) (per tensor: one value repeated). Raises ``ValueError`` if ``x2d``
    holds NaN/Inf or its range overflows float32.
    """
    _, path, mod, signed, static = _dynamic_call(sch, qweight)
    m, k = x2d.shape
    a_scale = np.empty(m, np.float32)
    a_zp = np.empty(m, np.int32)
    args = (x2d, *static, bias, act, y, a_scale, a_zp)
    block = _plan(m, static[3], k, path)
    if block:
        status = mod.dynamic_linear_f32_par(*args, block, config.use_parallel(x2d.size))
    else:
        status = mod.dynamic_linear_f32(*args)
    if status:
        _check_status(status, "x")
    if signed:  # the kernel's zero points include the shift
        a_zp -= SHIFT
    return a_scale, a_zp


def bound_linear_blocks(x2d, sch: QScheme, qweight, bias, act: int, y) -> tuple:
    """``(kernel, args)``: the call of :func:`dynamic_linear_blocks` on these buffers (a
    decode loop keeps it and calls it again on new contents of ``x2d``). The kernel
    returns a status (:func:`check_blocks_status`); ``args[-2]`` receives the block scales.
    """
    assert sch.granularity == "block" and sch.symmetric and sch.storage is np.int8
    block = sch.block_size
    assert qweight.group_size in (None, block), "validated by the caller"
    path, mod = _scheme_kernels(sch)
    (m, k), n = x2d.shape, qweight.shape[0]
    a_scale = np.empty(m * (k // block), np.float32)
    if m == 1 and block == 32 and act == 0 and path in ("vnni512", "amx"):
        return _q8_gemv(x2d, sch, qweight, bias, y, a_scale, path)
    args = (x2d, _lhs_tuple(sch), qweight.packed(path), k // 4, n, block // 4)
    args += (*qweight.block_panels(block, paths.get(path).panel), bias, act, y, a_scale)
    return mod.dynamic_linear_blocks_f32, (*args, _plan(m, n, k, path))


def _q8_gemv(x2d, sch: QScheme, qweight, bias, y, a_scale, path: str) -> tuple:
    """:func:`bound_linear_blocks` for one row on a VNNI CPU: :func:`numbaq.kernels.q8.q8_gemv`,
    the block tiles' bits from 1.125 bytes a weight (its own weight layout, made once)."""
    from .kernels import q8

    k = x2d.shape[1]
    w, w_scale = qweight.derived(("q8_gemv", k), _q8_pack, qweight, k)
    scratch = (np.empty(k, np.int8), np.empty(k // 32, np.int32))
    parallel = _plan(1, y.shape[1], k, path) > 0
    return q8.q8_gemv, (x2d, _lhs_tuple(sch), *scratch, w, w_scale, bias, y, a_scale, parallel)


def _q8_pack(qweight, k: int) -> tuple:
    from .kernels import q8

    scale = qweight.scale if qweight.scale.ndim == 2 else qweight.scale[:, None]
    return q8.pack(qweight.q, np.broadcast_to(scale, (qweight.shape[0], k // 32)))


def check_blocks_status(status: int) -> None:
    """Raise ``ValueError`` for a block kernel's nonzero status (NaN/Inf in ``x``, or a
    range that overflows float32)."""
    if status:
        _check_status(status, "x", "blocks")


def dynamic_linear_blocks(x2d, sch: QScheme, qweight, bias, act: int, y):
    """The fused block-scaled dynamic Linear: each block of ``sch.block_size`` values of
    ``x2d`` quantized on its own (symmetric signed schemes, ``BLOCK_Q8_0``), the block
    tiles, the epilogue: one kernel call, the weights' block scales and sums made once.

    ``x2d`` (M, K) float32, ``y`` (M, N) float32. Returns the scales (M, K // block).
    Raises ``ValueError`` if ``x2d`` holds NaN/Inf or its range overflows float32.
    """
    kernel, args = bound_linear_blocks(x2d, sch, qweight, bias, act, y)
    check_blocks_status(kernel(*args))
    return args[-2].reshape(x2d.shape[0], -1)


def q4_kernels():
    """``(path, dynamic kernel)`` for 4-bit block weights (:mod:`numbaq.kernels.q4`), by
    the configured GEMM path: ``vpdpbusd`` on ``vnni512`` and ``amx`` (CPUs with AVX-512
    VNNI), ``vpmaddubsw`` on the other SIMD paths (AVX2 CPUs), plain loops on ``plain``;
    the same bits on all three."""
    from .kernels import q4

    path = gemm_path()[0]
    if path in ("vnni512", "amx") and paths.supported("vnni512"):
        return "vnni512", q4.dynamic_q4_linear_vnni
    if path != "plain" and paths.supported("avx2"):
        return "avx2", q4.dynamic_q4_linear_avx2
    return "plain", q4.dynamic_q4_linear_plain


def bound_q4_linear(x2d, qweight, bias, y, glu: bool = False) -> tuple:
    """``(kernel, args)``: the call of :func:`q4_linear` on these buffers (a decode loop
    keeps it and calls it again on new contents of ``x2d``). The kernel returns a status
    (:func:`check_blocks_status`). With ``glu`` (weights packed in SwiGLU's gate/up
    ``pairs``), ``y`` (M, N // 2) receives ``silu(gate) * up`` instead."""
    assert not glu or (qweight.pairs and y.shape[1] * 2 == qweight.shape[0]), "the caller's"
    path, kernel = q4_kernels()
    (m, k), n = x2d.shape, qweight.shape[0]
    d, dm = (qweight.d32, qweight.m32) if path == "plain" else (qweight.d16, qweight.m16)
    blocks = m * k // 32
    scratch = (np.empty(m * k, np.int8), np.empty(blocks, np.float32), np.empty(blocks, np.int32))
    parallel = _plan(m, n, k, gemm_path()[0]) > 0
    args = (x2d, _lhs_tuple(BLOCK_Q8_0), *scratch, qweight.packed, d, dm, bias, y)
    return kernel, (*args, qweight.pairs, glu, parallel)


def q4_linear(x2d, qweight, bias, y):
    """The dynamic Linear on 4-bit block weights (:class:`numbaq.weights_q4.Q4Weight`):
    ``x2d`` (M, K) float32 quantized in blocks of 32 (``BLOCK_Q8_0``), the product
    (:mod:`numbaq.kernels.q4`) into ``y`` (M, N) float32, ``bias`` (N,) float32 added.
    Returns the activation scales (M, K // 32). Raises ``ValueError`` if ``x2d`` holds
    NaN/Inf or its range overflows float32."""
    kernel, args = bound_q4_linear(x2d, qweight, bias, y)
    check_blocks_status(kernel(*args))
    return args[3].reshape(x2d.shape[0], -1)


def _check_status(status: int, name: str, what: str = "rows") -> None:
    """Raise for a quantize kernel's status (``kernels.quantize._lhs_status``)."""
    if status:
        raise_nonfinite(name, max(status, 0), what)
        raise ValueError(
            f"the range of {name} overflows float32 (max - min is Inf); rescale {name}"
        )


def linear_blocks(codes, a_scale, qweight, block: int, bias, act: int, y) -> None:
    """Scales per block of K: ``y = sum_b float32(dot_b) * (a_scale[m, b] * w_scale[b, n])
    + bias``, ``dot_b`` the int32 product of block ``b``, ``w_scale`` the weights' scale
    of each block (``QuantizedWeight.block_panels``).

    ``codes`` (M, K) int8, ``a_scale`` (M, K // block) float32, ``y`` (M, N); ``block``
    a multiple of 4 dividing K (every path reads K four values at a time; the verbs
    refuse other sizes).
    """
    assert block % 4 == 0 and codes.shape[1] % block == 0, "validated by the caller"
    path, mod = _kernels(None)
    a, _ = shift_lhs(codes)
    (m, lda), n = a.shape, y.shape[1]
    args = (a.reshape(-1), lda, m, qweight.packed(path), lda // 4, n, block // 4)
    args += (a_scale, *qweight.block_panels(block, paths.get(path).panel), bias, act, y)
    block_rows = _plan(m, n, lda, path)
    if block_rows:
        mod.linear_blocks_f32_par(*args, block_rows)
    else:
        mod.linear_blocks_f32(*args)


def recurrence(
    lstm: bool, xg, h, c, out, reverse: bool, sch: QScheme, qweight, bias, owner: str, tasks=None
):
    """All steps of one LSTM/GRU layer direction in one kernel call.

    ``xg`` (T, B, G*H) float32 input projections, ``h``/``c`` (B, H) float32 initial
    state (updated in place; ``c`` unused for a GRU), ``out`` (T, B, H) every step's
    ``h``; ``qweight`` is ``W_hh`` (G*H, H) with one scale per row. Each step quantizes
    ``h`` under ``sch``, then every block of hidden units computes its gates' columns of
    the hidden projection and updates its units; the blocks are split across threads, so
    each core keeps its share of ``W_hh`` in its own cache from step to step. The results
    are the bits of the step-by-step path (dynamic Linear, then ``kernels.rnn``'s gates).
    ``tasks`` forces the number of blocks (tests); by default one per thread when a step
    is large enough to pay for a parallel launch, else one.
    """
    assert qweight.group_size is None, "per-group W_hh takes the step-by-step path"
    path, mod = _scheme_kernels(sch)
    gates = 4 if lstm else 3
    (batch, hidden), k = h.shape, qweight.shape[1]
    if tasks is None:
        # A parallel launch (a few us) per step pays for W_hh of 256 KB or more (even at
        # batch 1: split across the cores, each share stays in its core's L2 from step to
        # step) or for a large batch.
        large = qweight.q.nbytes >= 1 << 18 or batch * qweight.q.size >= config.GEMM_PARALLEL_MIN
        tasks = config.num_threads() if large else 1
    unit_block = _unit_block(path, gates, hidden, tasks)
    w = qweight
    if unit_block < hidden:  # one block is PyTorch's own order
        order = _gate_order(gates, hidden, unit_block)
        w, bias = qweight.reordered(f"gates{gates}x{unit_block}", order), bias[order]
    args = (lstm, xg, h, c, out, reverse, _lhs_tuple(sch), w.packed(path), -(-k // 4))
    args += (w.scale, w.col_sums, np.ascontiguousarray(bias))
    args += (np.empty(batch, np.float32), np.empty(batch, np.int32), unit_block)
    if unit_block < hidden:
        park_blas()
        status = mod.recurrence_par(*args)
    else:
        status = mod.recurrence(*args)
    if status:
        raise ValueError(
            f"{owner}: the hidden state overflowed or became NaN/Inf; check the weights"
        )


@functools.cache
def _gate_order(gates: int, hidden: int, unit_block: int) -> np.ndarray:
    order = gate_order(gates, hidden, unit_block)
    order.flags.writeable = False  # shared by every caller
    return order


def _unit_block(path: str, gates: int, hidden: int, tasks: int) -> int:
    """Hidden units per block: ``hidden / tasks`` rounded up to a number of units whose
    ``gates`` columns fill whole panels (all of them for one task). Few blocks: every
    block boundary costs a call and a short loop (measured, one thread, 64 steps of
    2048 x 512 at batch 1: 32 blocks 2894 us, 4 blocks 1788, 1 block 1703)."""
    panel = paths.get(path).panel
    base = panel // math.gcd(gates, panel)
    return min(hidden, base * -(-hidden // (base * tasks)))
