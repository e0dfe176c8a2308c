"""The pieces of :mod:`numbaq.models.bert`'s encoder: LayerNorm (fused with the next int8
Linear's quantization), ragged attention (float or int8), the encoder layer, and the
per-piece timing hook :func:`profile`. See :mod:`numbaq.models.bert` for the fusions.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from .. import config as nq_config
from .. import engine
from ..kernels import transformer as kt
from ..kernels.epilogue import SHIFT
from ..layers import Linear, Module, QuantLinear
from ..matmul import ACTIVATIONS as _GEMM_ACTIVATIONS

ATTENTION = ("float", "int8")

# Below these sizes a pass runs on one thread (2-core Xeon, 2026-12-01, other jobs
# running). LayerNorm 679 x 384 (with its quantization) took 0.11 (0.25) ms serial, 0.06
# (0.13) ms on 2 quiet threads but 0.3-1.3 ms when the second core was busy: at most
# 0.05 ms to win, a millisecond to lose, so it stays serial below 1M elements.
# Attention: ``work = sum L (L + 8) * D`` over the sentences (Zen 4, 2026-12-07): the 64
# test sentences (work 5.1e6) took 0.66 ms serial, 0.42 ms on 2 threads; 16 sentences
# (8.2e5) 152 against 149 us; 8 (3.4e5) 70 against 86 us.
LAYER_NORM_PARALLEL_MIN = 1 << 20
ATTENTION_PARALLEL_MIN = 1_000_000

_TIMES: dict | None = None  # per-piece seconds while a profile() is active


# ------------------------------------------------------------------ timing hook
class _Times(dict):
    """``{piece: seconds}``, and ``linears``: one ``(linear, rows, seconds, quantize_fused)``
    per Linear call (:func:`numbaq.models.bert.roofline` reads them)."""

    def __init__(self):
        super().__init__()
        self.linears: list = []


@contextlib.contextmanager
def profile():
    """Accumulate the wall time of each piece of every encoder call in the block.

    Yields a dict ``{piece: seconds}`` over ``linear`` (the GEMMs, with their activation
    quantize pass where it is not fused), ``attention``, ``layernorm`` (with the next int8
    Linear's activation quantization where fused), ``activation`` (a separate activation
    pass, when not fused), ``embedding``, ``pooling``, ``tokenize``, filled in as the block
    runs. Its attribute ``linears`` lists every Linear call: ``(linear, rows, seconds,
    quantize_fused)``. Not thread-safe: one profile at a time.

    Examples
    --------
    >>> with profile() as times:
    ...     pass
    >>> times, times.linears
    ({}, [])
    """
    global _TIMES
    outer, _TIMES = _TIMES, _Times()
    try:
        yield _TIMES
    finally:
        _TIMES = outer


def profiling() -> bool:
    """Whether a :func:`profile` is active (its timing hooks run).

    Returns
    -------
    bool
        True inside ``with profile():``.

    Examples
    --------
    >>> with profile():
    ...     profiling()
    True
    """
    return _TIMES is not None


def timed(piece: str, fn, *args):
    if _TIMES is None:
        return fn(*args)
    t0 = time.perf_counter()
    out = fn(*args)
    _TIMES[piece] = _TIMES.get(piece, 0.0) + time.perf_counter() - t0
    return out


def _timed_linear(linear, rows: int, quantize_fused: bool, fn, *args):
    """``fn(*args)``, timed as ``linear`` (``rows`` activation rows) while a profile runs."""
    if _TIMES is None:
        return fn(*args)
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    _TIMES["linear"] = _TIMES.get("linear", 0.0) + seconds
    _TIMES.linears.append((linear, rows, seconds, quantize_fused))
    return out


def _call_linear(linear, x):
    """``linear(x)``, timed by :func:`_timed_linear`."""
    return _timed_linear(linear, x.shape[0], False, linear, x)


def add_time(piece: str, t0: float) -> None:
    """Add the seconds since ``t0`` to ``piece`` while a :func:`profile` is active."""
    if _TIMES is not None:
        _TIMES[piece] = _TIMES.get(piece, 0.0) + time.perf_counter() - t0


class Workspace:
    """The float32 and uint8 buffers of one encoder call, by role, reused layer after layer.

    A fresh multi-megabyte array costs a page fault per 4 KiB on first write (the kernel
    zeroes each page): all-MiniLM-L6-v2's int8 encode took about 2,000 faults and 10% of
    its time on one Zen 4 core before its layers shared these. A buffer of a role is
    handed out again only once the value it held is dead (the roles below, and the order
    of :meth:`BertLayer.run`); the workspace lives for one call, so nothing it hands out
    is overwritten after the call returns.

    Roles: ``h`` (the output LayerNorm's, also the embeddings' norm), ``a`` (the attention
    LayerNorm's), ``codes`` (int8 codes a LayerNorm writes for the next Linear), ``qkv``,
    ``context``, ``o`` (attention output projection), ``u`` (feed-forward up), ``y``
    (feed-forward down).
    """

    def __init__(self):
        self._buffers: dict = {}

    def get(self, role: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        """The buffer of ``role`` with ``shape`` and ``dtype`` (contents undefined)."""
        key = (role, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf


def _empty(ws: Workspace | None, role: str, shape: tuple, dtype=np.float32) -> np.ndarray:
    return np.empty(shape, dtype) if ws is None else ws.get(role, shape, dtype)


def plain_quant(linear) -> bool:
    """Whether ``linear`` is a dynamic int8 Linear the engine can run straight into a
    given output: per-token or per-tensor activations, per-channel weights, nothing
    (``numbaq.compare``, ``numbaq.trace``) watching its call."""
    return (
        type(linear) is QuantLinear
        and linear.scheme.granularity in ("row", "tensor")
        and not linear.qweight.group_size
        and linear.trace_log is None
        and linear._recorder is None
    )


def linear_into(linear, x, ws: Workspace | None, role: str) -> np.ndarray:
    """``linear(x)`` for (T, K) float32 ``x``; a plain int8 Linear writes into the
    workspace buffer of ``role`` (the same bits: the engine call its ``forward`` makes)."""
    if ws is None or not plain_quant(linear) or x.ndim != 2 or x.dtype != np.float32:
        return _call_linear(linear, x)
    if x.shape[1] != linear.in_features or not x.flags.c_contiguous:
        return _call_linear(linear, x)  # its own checks raise or convert
    y = ws.get(role, (x.shape[0], linear.out_features))
    bias = linear.qweight.zero_bias if linear.bias is None else linear.bias
    act = _GEMM_ACTIVATIONS[linear.activation]
    args = (x, linear.scheme, linear.qweight, bias, act, y)
    try:
        _timed_linear(linear, x.shape[0], False, engine.dynamic_linear, *args)
    except ValueError as err:  # NaN/Inf in x: the message QuantLinear's own call gives
        raise ValueError(f"QuantLinear: {err}") from None
    return y


# ------------------------------------------------------------------ layers
class LayerNorm(Module):
    """``LayerNorm(x + residual)``: ``(v - mean) / sqrt(var + eps) * weight + bias`` over
    the last axis, with the residual added in the same pass (``kernels.transformer``).

    Parameters
    ----------
    weight, bias : (D,) float arrays
    eps : float

    Examples
    --------
    >>> norm = LayerNorm(np.ones(2), np.zeros(2))
    >>> norm(np.array([[1.0, 3.0]], np.float32)).round(4).tolist()
    [[-1.0, 1.0]]
    """

    def __init__(self, weight, bias, eps: float = 1e-12):
        super().__init__()
        self._param("weight", np.asarray(weight, np.float32))
        self._param("bias", np.asarray(bias, np.float32))
        if not isinstance(eps, (int, float, np.number)) or not (np.isfinite(eps) and eps >= 0):
            raise ValueError(f"LayerNorm: eps must be a finite number >= 0, got {eps!r}")
        self.eps = float(eps)

    def forward(self, x, residual=None):
        x = np.ascontiguousarray(x, np.float32)
        d = self.weight.shape[0]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"LayerNorm: x must have shape (T, {d}), got {x.shape}")
        if residual is None:
            residual = np.zeros_like(x)
        else:
            residual = np.ascontiguousarray(residual, np.float32)
            if residual.shape != x.shape:
                raise ValueError(
                    f"LayerNorm: residual must have the shape of x {x.shape}, got {residual.shape}"
                )
        out = np.empty_like(x)
        par = x.size >= LAYER_NORM_PARALLEL_MIN and nq_config.num_threads() > 1
        kernel = kt._add_layer_norm if par else kt._add_layer_norm_serial
        kernel(x, residual, self.weight, self.bias, self.eps, out)
        return out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={float(self.eps):g}"


def _fusable(norm, linear) -> bool:
    """Whether ``norm`` can write ``linear``'s quantized activations: a plain int8 Linear
    (:func:`plain_quant`), and nothing watching the LayerNorm's own call."""
    return plain_quant(linear) and type(norm) is LayerNorm and norm._recorder is None


def norm_linear(norm, x, residual, linear, ws: Workspace | None = None, roles=("h", "y")):
    """``h = norm(x, residual)`` and ``linear(h)``; for an int8 ``linear``, in one pass.

    The fused path: the LayerNorm kernel also quantizes each row it writes, under
    ``linear``'s scheme (``kernels.transformer._add_layer_norm_quant``); the GEMM then
    takes those codes (``numbaq.engine.linear``). Bit for bit the same as the two calls.

    ``ws`` and ``roles``: the :class:`Workspace` buffers of ``h`` and ``y`` (fresh
    arrays without a workspace).

    Returns
    -------
    h : (T, D) float32
    y : (T, N) float32
    """
    if not _fusable(norm, linear):
        h = timed("layernorm", norm, x, residual)
        return h, _call_linear(linear, h)
    x = np.ascontiguousarray(x, np.float32)
    residual = np.ascontiguousarray(residual, np.float32)
    d = norm.weight.shape[0]
    if x.ndim != 2 or x.shape[1] != d or residual.shape != x.shape:
        raise ValueError(
            f"LayerNorm: x and residual must have shape (T, {d}), got {x.shape}, {residual.shape}"
        )
    if linear.in_features != d:
        raise ValueError(f"{type(linear).__name__}: in_features must be {d}")
    m = x.shape[0]
    h = _empty(ws, roles[0], x.shape)
    lhs = engine.lhs_params(linear.scheme)
    a = _empty(ws, "codes", (m, 4 * -(-d // 4)), np.uint8)
    a[:, d:] = 0
    a_scale = np.empty(m, np.float32)
    a_zp = np.empty(m, np.int32)
    par = x.size >= LAYER_NORM_PARALLEL_MIN and nq_config.num_threads() > 1
    kernel = kt._add_layer_norm_quant_par if par else kt._add_layer_norm_quant
    args = (x, residual, norm.weight, norm.bias, norm.eps, h, lhs, a, a_scale, a_zp)
    status = timed("layernorm", kernel, *args)
    if status:
        raise ValueError("LayerNorm: its output holds NaN or Inf, or its range overflows float32")
    if lhs.signed:
        a_zp -= SHIFT  # the scheme's own zero points
    bias = linear.qweight.zero_bias if linear.bias is None else linear.bias
    y = _empty(ws, roles[1], (m, linear.out_features))
    act = _GEMM_ACTIVATIONS[linear.activation]
    args = (a, a_scale, a_zp, lhs.signed, linear.qweight, bias, act, y, lhs.qmax)
    _timed_linear(linear, m, True, engine.linear, *args)
    return h, y


def _task_split(offsets: np.ndarray, heads: int, workers: int):
    """``(worker_ptr, tasks)``: the (sentence, head) tasks in one list per worker, balanced
    by cost ``L (L + 8)`` (longest first, dealt out in snake order 0, 1, ..., 1, 0, ...)."""
    lengths = np.diff(offsets)
    cost = np.repeat(lengths * (lengths + 8), heads)
    order = np.argsort(-cost, kind="stable")
    n = order.size
    rank = np.arange(n) % (2 * workers)
    worker = np.where(rank < workers, rank, 2 * workers - 1 - rank)
    by_worker = np.argsort(worker, kind="stable")
    tasks = order[by_worker].astype(np.int64)
    counts = np.bincount(worker, minlength=workers)
    worker_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return worker_ptr, tasks


def attention_qkv(qkv, offsets, heads: int, dtype: str = "float", out=None) -> np.ndarray:
    """Scaled dot-product attention per (sentence, head) of a ragged batch.

    Parameters
    ----------
    qkv : (T, 3 D) float32
        Queries, keys and values side by side (the fused projection).
    offsets : (n + 1,) int
        Sentence ``i`` is rows ``offsets[i]:offsets[i + 1]``; increasing from 0 to T.
    heads : int
        D must be a multiple of it.
    dtype : {"float", "int8"}
        ``"int8"``: the dynamically quantized attention (module notes).
    out : (T, D) float32, optional
        Where to write the result (C-contiguous); a new array by default.

    Returns
    -------
    (T, D) float32

    Notes
    -----
    ``softmax(q k^T / sqrt(d)) v`` with ``d = D / heads``, per sentence and head; in
    parallel over workers, each running a cost-balanced list of (sentence, head) tasks.
    """
    qkv = np.ascontiguousarray(qkv, np.float32)
    offsets = np.asarray(offsets)
    if qkv.ndim != 2 or qkv.shape[1] % 3:
        raise ValueError(f"attention: qkv must have shape (T, 3 D), got {qkv.shape}")
    width = qkv.shape[1] // 3
    if not isinstance(heads, (int, np.integer)) or heads < 1 or width % heads:
        raise ValueError(f"attention: heads must divide D = {width}, got {heads!r}")
    if (
        offsets.ndim != 1
        or offsets.size < 2
        or offsets.dtype.kind not in "iu"
        or offsets[0] != 0
        or offsets[-1] != qkv.shape[0]
        or np.any(np.diff(offsets) < 1)
    ):
        raise ValueError(f"attention: offsets must increase strictly from 0 to T = {qkv.shape[0]}")
    if dtype not in ATTENTION:
        raise ValueError(f"attention: dtype must be one of {ATTENTION}, got {dtype!r}")
    offsets = offsets.astype(np.int64)
    if out is None:
        out = np.empty((qkv.shape[0], width), np.float32)
    elif (
        out.shape != (qkv.shape[0], width) or out.dtype != np.float32 or not out.flags.c_contiguous
    ):
        raise ValueError(
            f"attention: out must be C-contiguous float32 of shape {(qkv.shape[0], width)}"
        )
    workers = nq_config.num_threads()  # 1 where a parallel launch is unsafe
    n_tasks = (offsets.size - 1) * heads
    lengths = np.diff(offsets)
    work = int((lengths * (lengths + 8)).sum()) * width
    if workers > 1 and n_tasks > 1 and work >= ATTENTION_PARALLEL_MIN:
        worker_ptr, tasks = _task_split(offsets, int(heads), min(workers, n_tasks))
        kernel = kt._attention_par if dtype == "float" else kt._attention_int8_par
        kernel(qkv, offsets, int(heads), worker_ptr, tasks, out)
    else:
        kernel = kt._attention if dtype == "float" else kt._attention_int8
        kernel(qkv, offsets, int(heads), out)
    return out


def attention(q, k, v, offsets, heads: int, dtype: str = "float") -> np.ndarray:
    """:func:`attention_qkv` on separate ``q``, ``k``, ``v`` (T, D) float32."""
    arrays = [np.asarray(a, np.float32) for a in (q, k, v)]
    if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(
            f"attention: q, k, v must have one shape (T, D), got {[a.shape for a in arrays]}"
        )
    return attention_qkv(np.concatenate(arrays, axis=1), offsets, heads, dtype)


def _gelu_tanh(x):
    """``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`` (``gelu_new``), float32."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (np.float32(0.5) * x * (1 + np.tanh(c * (x + np.float32(0.044715) * x**3)))).astype(
        np.float32
    )


def _apply(act: str, x):
    if act == "gelu_tanh":
        return _gelu_tanh(x)
    from ..layers.linear import activate

    return activate(np.array(x, np.float32), act)


class BertLayer(Module):
    """One encoder layer: the attention block, then the feed-forward block, each with a
    residual connection and LayerNorm (post-norm BERT).

    Children: ``qkv`` (Linear D -> 3 D: Q, K, V concatenated), ``attention_output``,
    ``attention_norm``, ``intermediate`` (Linear D -> I, activation fused where it can be),
    ``output``, ``output_norm``.
    """

    def __init__(self, params: dict, prefix: str, heads: int, eps: float, act: str = "gelu"):
        super().__init__()
        p = lambda name: params[f"{prefix}.{name}"]  # noqa: E731
        names = ("query", "key", "value")
        self._child(
            "qkv",
            Linear(
                np.concatenate([p(f"attention.self.{n}.weight") for n in names]),
                np.concatenate([p(f"attention.self.{n}.bias") for n in names]),
            ),
        )
        self._child(
            "attention_output",
            Linear(p("attention.output.dense.weight"), p("attention.output.dense.bias")),
        )
        self._child(
            "attention_norm",
            LayerNorm(
                p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias"), eps
            ),
        )
        fused = act if act in ("gelu", "relu") else None
        self._child(
            "intermediate",
            Linear(p("intermediate.dense.weight"), p("intermediate.dense.bias"), fused),
        )
        self._child("output", Linear(p("output.dense.weight"), p("output.dense.bias")))
        self._child(
            "output_norm", LayerNorm(p("output.LayerNorm.weight"), p("output.LayerNorm.bias"), eps)
        )
        self.heads = heads
        self.act = act

    def forward(self, h, offsets, attention_dtype: str = "float"):
        return self.run(h, offsets, attention_dtype)[0]

    def run(self, h, offsets, attention_dtype="float", qkv=None, next_qkv=None, ws=None):
        """``(h_out, next_qkv(h_out) or None)``: :meth:`forward` where ``qkv`` (this
        layer's ``self.qkv(h)``) may come precomputed, and the last LayerNorm may feed
        ``next_qkv`` (the next layer's ``qkv`` Linear) in the same pass (:func:`norm_linear`).
        ``ws``: the call's :class:`Workspace` (its roles' buffers are reused)."""
        if qkv is None:
            qkv = linear_into(self.qkv, h, ws, "qkv")
        context = _empty(ws, "context", (qkv.shape[0], qkv.shape[1] // 3))
        args = (qkv, offsets, self.heads, attention_dtype, context)
        context = timed("attention", attention_qkv, *args)
        o = linear_into(self.attention_output, context, ws, "o")
        a, u = norm_linear(self.attention_norm, o, h, self.intermediate, ws, ("a", "u"))
        if getattr(self.intermediate, "activation", None) != self.act:  # not fused (any more)
            u = timed("activation", _apply, self.act, u)
        y = linear_into(self.output, u, ws, "y")
        if next_qkv is None:
            return timed("layernorm", self.output_norm, y, a), None
        return norm_linear(self.output_norm, y, a, next_qkv, ws, ("h", "qkv"))


def roofline(model, sentences, repeat: int = 3, pieces_repeat: int = 9) -> list[dict]:
    """Each Linear of ``model`` in the roofline view: its time inside the encoder split
    into the activation quantize, the int32 core, the epilogue and the rest, against the
    GEMM path's measured peak on this CPU (:mod:`numbaq.roofline`).

    Parameters
    ----------
    model : BertEncoder
        Quantized (per-token or per-tensor activations, per-channel weights).
    sentences : list of str
        Encoded ``repeat`` times under :func:`profile`; each Linear's time is its mean.
    repeat, pieces_repeat : int
        Encodes to average; timed calls of each piece (:func:`numbaq.roofline.linear_pieces`).

    Returns
    -------
    list of dict
        One row per Linear call of one encode, in order: ``name`` and the keys of
        :func:`numbaq.roofline.linear_pieces`, ``total_us`` the time measured in the model.
        ``quantize_fused`` rows take codes written by the LayerNorm before them (that
        pass is in the ``layernorm`` piece of :func:`profile`).
    """
    from .. import roofline as rl

    names = {id(mod): name for name, mod in model.named_modules()}
    model.encode(sentences)  # kernels loaded or compiled, outside the timing
    with profile() as times:
        for _ in range(repeat):
            model.encode(sentences)
    calls = times.linears
    per_encode = len(calls) // repeat
    rows = []
    for i in range(per_encode):
        linear, m, _, fused = calls[i]
        if not isinstance(linear, QuantLinear):
            raise ValueError(f"roofline: {names.get(id(linear))} is not a QuantLinear; quantize")
        seconds = sum(calls[i + r * per_encode][2] for r in range(repeat)) / repeat
        row = rl.linear_pieces(
            linear.qweight,
            m,
            linear.scheme,
            linear.activation,
            total_us=seconds * 1e6,
            quantize_fused=fused,
            repeat=pieces_repeat,
        )
        rows.append({"name": names.get(id(linear), "?"), **row})
    return rows
