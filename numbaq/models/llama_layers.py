"""The pieces of :mod:`numbaq.models.llama`'s decoder: its config, the KV cache, RMSNorm,
the decoder layer (RMSNorm fused with the next int8 Linear's quantization, fused Q/K/V,
rotary embedding, grouped-query attention over the cache, fused gate/up, SwiGLU), and the
decode plan that replays a step's kernel calls. See :mod:`numbaq.models.llama`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import config as nq_config
from .. import engine
from ..kernels import decoder as kd
from ..layers import Linear, Module, QuantLinear
from ..layers.q4 import Q4Linear
from .bert_layers import Workspace, linear_into, plain_quant, timed

KV_CACHE = ("float32", "int8")
ATTENTION_KERNELS = {False: kd._attention, True: kd._attention_par}  # by: parallel
SWIGLU_STORE_ROWS = 8
"""Up to this many rows (decode steps), a 4-bit gate/up Linear packed in pairs writes
SwiGLU's product in its store; past it the separate pass, whose long rows vectorize, is
faster (SmolLM2 prefill of 256 tokens, one Zen 4 thread: 372 ms fused, 336 ms not)."""
ATTENTION_PARALLEL_MIN = 200_000  # sum of keys x heads x head width, as in bert_layers

_CONFIG_FIELDS = {  # transformers' names: (type, required)
    "hidden_size": (int, True),
    "intermediate_size": (int, True),
    "num_hidden_layers": (int, True),
    "num_attention_heads": (int, True),
    "num_key_value_heads": (int, False),
    "head_dim": (int, False),
    "rms_norm_eps": (float, False),
    "rope_theta": (float, False),
    "vocab_size": (int, True),
    "max_position_embeddings": (int, False),
    "tie_word_embeddings": (bool, False),
}


@dataclass(frozen=True)
class LlamaConfig:
    """The hyper-parameters of a Llama-family decoder (transformers' names).

    Parameters
    ----------
    hidden_size, intermediate_size : int
        Width of the hidden states and of the SwiGLU block.
    num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim : int
        Layers; query heads; key/value heads (grouped-query attention); width of a head.
    vocab_size : int
        Tokens in the vocabulary.
    rms_norm_eps : float
        RMSNorm's epsilon.
    rope_theta : float
        Base of the rotary embedding's frequencies.
    max_position_embeddings : int
        The longest sequence.
    tie_word_embeddings : bool
        The output head is the token embedding.
    bos_token_id : int or None
        The beginning-of-sequence token.
    eos_token_id : tuple of int
        Token ids that end generation by default.
    chat_template : str or None
        The checkpoint's Jinja chat template.

    Examples
    --------
    >>> cfg = LlamaConfig.from_dict({"hidden_size": 8, "intermediate_size": 16,
    ...     "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10})
    >>> cfg.head_dim, cfg.num_key_value_heads, cfg.group
    (4, 2, 1)
    """

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: tuple = ()
    chat_template: str | None = None

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_dict(cls, config: dict, source: str = "config") -> LlamaConfig:
        """Check and complete a transformers-style config.

        Parameters
        ----------
        config : dict
            ``config.json``'s fields (or :func:`numbaq.models.gguf.config`'s).
        source : str
            The file named in errors.

        Returns
        -------
        LlamaConfig

        Raises
        ------
        ValueError
            Naming the field that is missing, of the wrong type, or not supported.

        Examples
        --------
        >>> LlamaConfig.from_dict({"hidden_size": 8, "intermediate_size": 16,
        ...     "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10}).head_dim
        4
        """
        if not isinstance(config, dict):
            raise ValueError(f"{source}: the config must be a JSON object, got {type(config)}")
        arch = config.get("model_type", "llama")
        if arch not in ("llama", "mistral", "qwen2") or config.get("attention_bias"):
            raise ValueError(
                f"{source}: model_type {arch!r} (attention_bias="
                f"{config.get('attention_bias')!r}) is not supported; numbaq.models.llama "
                "reads Llama-family decoders (model_type 'llama' without attention biases)"
            )
        act = config.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"{source}: hidden_act must be 'silu' (SwiGLU), got {act!r}")
        values = {}
        for name, (kind, required) in _CONFIG_FIELDS.items():
            value = config.get(name)
            if value is None:
                if required:
                    raise ValueError(f"{source}: field {name!r} is missing")
                continue
            ok = (
                isinstance(value, bool)
                if kind is bool
                else (
                    isinstance(value, (int, float) if kind is float else int)
                    and not isinstance(value, bool)
                )
            )
            if not ok or (kind is not bool and not (math.isfinite(value) and value > 0)):
                raise ValueError(
                    f"{source}: field {name!r} must be a positive {kind.__name__}, got {value!r}"
                )
            values[name] = kind(value)
        heads = values["num_attention_heads"]
        kv = values.setdefault("num_key_value_heads", heads)
        if heads % kv:
            raise ValueError(
                f"{source}: num_attention_heads ({heads}) must be a multiple of "
                f"num_key_value_heads ({kv})"
            )
        d = values.setdefault("head_dim", values["hidden_size"] // heads)
        if d % 2 or d * heads == 0:
            raise ValueError(f"{source}: head_dim must be even and positive, got {d}")
        rope = config.get("rope_scaling")
        if rope not in (None, {}) and (rope or {}).get("rope_type", rope.get("type")) != "default":
            raise ValueError(f"{source}: rope_scaling {rope!r} is not supported")
        eos = config.get("eos_token_id")
        eos = () if eos is None else tuple(int(e) for e in np.atleast_1d(eos))
        bos = config.get("bos_token_id")
        return cls(
            **values,
            bos_token_id=None if bos is None else int(bos),
            eos_token_id=eos,
            chat_template=config.get("chat_template"),
        )


# ------------------------------------------------------------------ KV cache
class KVCache:
    """Keys and values of every layer for a batch of sequences (``kernels.decoder``).

    Parameters
    ----------
    config : LlamaConfig
        The model's hyper-parameters.
    batch : int
        Sequences.
    capacity : int
        Positions held per sequence; :meth:`reserve` grows it.
    dtype : {"float32", "int8"}
        ``"int8"``: symmetric codes with one runtime scale per (sequence, head, position).

    Attributes
    ----------
    lengths : (batch,) int64
        Positions filled per sequence.

    Examples
    --------
    >>> cfg = LlamaConfig(8, 16, 2, 2, 1, 4, 10)
    >>> cache = KVCache(cfg, batch=1, capacity=10, dtype="int8")
    >>> cache.capacity, cache.layers[0][0].shape  # keys transposed: (B, H_kv, d, capacity)
    (64, (1, 1, 4, 64))
    """

    def __init__(self, config: LlamaConfig, batch: int, capacity: int, dtype: str = "float32"):
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        if dtype not in KV_CACHE:
            raise ValueError(f"kv_cache must be one of {KV_CACHE}, got {dtype!r}")
        for name, value, least in (("batch", batch, 1), ("capacity", capacity, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"KVCache: {name} must be an int >= {least}, got {value!r}")
        self.config, self.dtype, self.batch = config, dtype, int(batch)
        self.lengths = np.zeros(self.batch, np.int64)
        self.plans: dict = {}  # LlamaDecoder._plan: recorded decode steps on these arrays
        self.capacity = 0
        self.layers: list = []
        self._allocate(max(int(capacity), 1))

    def _allocate(self, capacity: int) -> None:
        capacity = -(-capacity // 64) * 64  # the attention reads 64 positions at a time
        cfg, b = self.config, self.batch
        hkv, d = cfg.num_key_value_heads, cfg.head_dim
        dt = np.int8 if self.dtype == "int8" else np.float32
        old, filled = self.layers, self.capacity
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            kt = np.zeros((b, hkv, d, capacity), dt)
            v = np.zeros((b, hkv, capacity, d), dt)
            # scales: one per (sequence, head, position) for int8 codes; a float32 cache's
            # kernels never read theirs
            scales = (b, hkv, capacity) if self.dtype == "int8" else (1, 1, 1)
            ks, vs = np.ones(scales, np.float32), np.ones(scales, np.float32)
            if old:
                kt[..., :filled] = old[i][0]
                v[:, :, :filled] = old[i][1]
                if self.dtype == "int8":
                    ks[..., :filled] = old[i][2]
                    vs[..., :filled] = old[i][3]
            self.layers.append((kt, v, ks, vs))
        self.capacity = capacity
        self.plans.clear()

    def reserve(self, positions: int) -> None:
        """Make room for ``positions`` per sequence (doubling, contents kept).

        Parameters
        ----------
        positions : int
            Positions each sequence must be able to hold.
        """
        if positions > self.capacity:
            self._allocate(max(positions, 2 * self.capacity))

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache (all layers, codes and scales)."""
        return sum(a.nbytes for layer in self.layers for a in layer)


# ------------------------------------------------------------------ layers
def rope_tables(config: LlamaConfig, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """``cos``, ``sin`` (positions, head_dim / 2) float32 of ``p * theta^(-2i/d)``."""
    d = config.head_dim
    inv_freq = (1.0 / config.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)).astype(
        np.float32
    )
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class RMSNorm(Module):
    """``h / sqrt(mean(h^2) + eps) * weight`` over the last axis (float64 sum of squares).

    Parameters
    ----------
    weight : (D,) float array
        The per-feature gain.
    eps : float
        Added to the mean square.

    Examples
    --------
    >>> RMSNorm(np.ones(2, np.float32), 0.0)(np.array([[3.0, 4.0]], np.float32)).round(3)
    array([[0.849, 1.131]], dtype=float32)
    """

    def __init__(self, weight, eps: float):
        super().__init__()
        self._param("weight", np.asarray(weight, np.float32))
        if not isinstance(eps, (int, float, np.number)) or not (np.isfinite(eps) and eps >= 0):
            raise ValueError(f"RMSNorm: eps must be a finite number >= 0, got {eps!r}")
        self.eps = float(eps)

    def forward(self, x):
        x = np.array(x, np.float32, ndmin=2, copy=True)
        d = self.weight.shape[0]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"RMSNorm: x must have shape (T, {d}), got {x.shape}")
        out = np.empty_like(x)
        kd._add_rms_norm(x, x, False, self.weight, np.float32(self.eps), out)
        return out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps:g}"


def quant_target(linear):
    """The GEMM call (:func:`numbaq.engine.prepared_linear`) of a plain int8 Linear, whose
    input a producer quantizes; None for any other Linear (it quantizes its own input)."""
    if not plain_quant(linear):
        return None
    bias = linear.qweight.zero_bias if linear.bias is None else linear.bias
    return engine.prepared_linear(linear.scheme, linear.qweight, bias, 0)


def block_target(linear) -> bool:
    """Whether ``linear`` is a block-scaled Linear (``BLOCK_Q8_0`` int8, or 4-bit
    :class:`~numbaq.layers.q4.Q4Linear`) whose whole call (block quantize, tiles,
    epilogue) is one kernel the decode plan can keep."""
    sch = getattr(linear, "scheme", None)
    if type(linear) is Q4Linear:
        return linear.trace_log is None and linear._recorder is None
    return (
        type(linear) is QuantLinear
        and sch.granularity == "block"
        and sch.symmetric
        and sch.storage is np.int8
        and linear.qweight.group_size in (None, sch.block_size)
        and linear.in_features % sch.block_size == 0
        and linear.trace_log is None
        and linear._recorder is None
    )


def swiglu_target(linear) -> bool:
    """Whether ``linear`` (a layer's gate/up) is a 4-bit Linear packed in gate/up pairs
    whose product can write SwiGLU's output itself (nothing watching its call)."""
    return type(linear) is Q4Linear and linear.qweight.pairs and block_target(linear)


def codes_buffers(ws: Workspace, m: int, k: int):
    """Workspace buffers for a producer's codes: ``a`` (M, lda) uint8 (K padding zeroed),
    ``a_scale`` (M,) float32, ``a_zp`` (M,) int32."""
    lda = 4 * -(-k // 4)
    a = ws.get("codes", (m, lda), np.uint8)
    if lda != k:
        a[:, k:] = 0
    return a, ws.get("a_scale", (m,)), ws.get("a_zp", (m,), np.int32)


class StepWorkspace(Workspace):
    """A :class:`~numbaq.models.bert_layers.Workspace` that also records the kernel calls
    made on its buffers (``calls``: ``(piece, kernel, args)``), so that a decode step can
    be replayed on new token ids by calling the same kernels on the same buffers."""

    def __init__(self):
        super().__init__()
        self.calls: list = []


def call(ws, piece: str, kernel, *args):
    """``kernel(*args)``, timed as ``piece`` (:func:`bert_layers.profile`), and recorded
    when ``ws`` is a :class:`StepWorkspace`."""
    if isinstance(ws, StepWorkspace):
        ws.calls.append((piece, kernel, args))
    return timed(piece, kernel, *args)


def project(linear, x, codes, ws: Workspace, role: str):
    """``linear(x)``; from the producer's ``codes`` when it wrote them."""
    if codes is None and block_target(linear):
        y = ws.get(role, (x.shape[0], linear.out_features))
        bias = linear.qweight.zero_bias if linear.bias is None else linear.bias
        if type(linear) is Q4Linear:
            kernel, args = engine.bound_q4_linear(x, linear.qweight, bias, y)
        else:
            kernel, args = engine.bound_linear_blocks(x, linear.scheme, linear.qweight, bias, 0, y)
        engine.check_blocks_status(call(ws, "linear", kernel, *args))
        return y
    if codes is None:
        return linear_into(linear, x, ws, role)
    prepared, buf = codes
    y = ws.get(role, (x.shape[0], linear.out_features))
    kernel, args = engine.bound_linear(prepared, *buf, y)
    call(ws, "linear", kernel, *args)
    return y


def check_status(status: int, piece: str) -> None:
    if status:
        raise ValueError(
            f"{piece}: NaN or Inf in its input or output, or a range that overflows float32"
        )


def quantize_for(linear, producer, piece: str, args: tuple, ws: Workspace, out):
    """Run ``producer(*args, out)``; for a plain int8 ``linear`` its ``_quant`` twin, which
    also writes ``linear``'s codes of ``out``. Returns the codes (or None)."""
    prepared = quant_target(linear)
    if prepared is None:
        call(ws, piece.lower(), producer[0], *args, out)
        return None
    buf = codes_buffers(ws, *out.shape)
    check_status(call(ws, piece.lower(), producer[1], *args, out, prepared[0], *buf), piece)
    return prepared, buf


def norm_into(norm: RMSNorm, h, delta, add: bool, linear, ws: Workspace, role: str):
    """``h += delta``; ``x = norm(h)``, and ``linear``'s codes of ``x`` when it takes them."""
    x = ws.get(role, h.shape)
    par = h.size >= nq_config.PARALLEL_MIN and nq_config.num_threads() > 1
    kernels = (kd._add_rms_norm_par if par else kd._add_rms_norm, kd._add_rms_norm_quant)
    args = (h, delta, add, norm.weight, np.float32(norm.eps))
    return x, quantize_for(linear, kernels, "RMSNorm", args, ws, x)


def attention_kernel(pos, width: int):
    """The attention kernel (a float32 or int8 cache alike) for new rows at positions
    ``pos`` and a context ``width``: parallel from ``sum(pos + 1) * width`` of
    :data:`ATTENTION_PARALLEL_MIN` on more than one thread."""
    work = int(np.sum(pos + 1)) * width
    par = work >= ATTENTION_PARALLEL_MIN and nq_config.num_threads() > 1
    return ATTENTION_KERNELS[par]


class LlamaLayer(Module):
    """One decoder layer: attention and SwiGLU blocks, each after its RMSNorm.

    Children: ``input_norm``, ``qkv`` (Linear (H d + 2 H_kv d, D)), ``o``, ``post_norm``,
    ``gate_up`` (Linear (2 F, D): gate rows, then up rows), ``down``.

    Parameters
    ----------
    params : dict of str to array
        The checkpoint's arrays (transformers' names, no ``model.`` prefix).
    i : int
        The layer's index.
    config : LlamaConfig
        The hyper-parameters.
    """

    def __init__(self, params: dict, i: int, config: LlamaConfig):
        super().__init__()
        p = f"layers.{i}."
        eps = config.rms_norm_eps
        att = p + "self_attn."
        qkv = np.concatenate([params[att + f"{n}_proj.weight"] for n in "qkv"])
        gate_up = np.concatenate(
            [params[p + "mlp.gate_proj.weight"], params[p + "mlp.up_proj.weight"]]
        )
        self._child("input_norm", RMSNorm(params[p + "input_layernorm.weight"], eps))
        self._child("qkv", Linear(qkv))
        self._child("o", Linear(params[att + "o_proj.weight"]))
        self._child("post_norm", RMSNorm(params[p + "post_attention_layernorm.weight"], eps))
        self._child("gate_up", Linear(gate_up))
        self._child("down", Linear(params[p + "mlp.down_proj.weight"]))
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads

    def forward(self, *args):
        raise TypeError("LlamaLayer runs inside LlamaDecoder (it needs the KV cache)")

    def run(self, h, delta, add: bool, rows, cache_layer, rope, ws: Workspace):
        """Add ``delta`` (the previous layer's last residual branch) to ``h`` in place and
        run this layer on it; returns this layer's last branch (``down``'s output)."""
        seq, pos = rows
        x, codes = norm_into(self.input_norm, h, delta, add, self.qkv, ws, "x")
        qkv = project(self.qkv, x, codes, ws, "qkv")
        ctx = ws.get(
            "ctx", (h.shape[0], self.heads * (qkv.shape[1] // (self.heads + 2 * self.kv_heads)))
        )
        kernel = attention_kernel(pos, ctx.shape[1])
        args = (qkv, seq, pos, *rope, self.heads, self.kv_heads, *cache_layer, ctx)
        call(ws, "attention", kernel, *args)
        codes = None
        prepared = quant_target(self.o)
        if prepared is not None:
            buf = codes_buffers(ws, *ctx.shape)
            status = call(ws, "attention", kd._quantize_out, ctx, prepared[0], *buf)
            check_status(status, "attention")
            codes = (prepared, buf)
        o = project(self.o, ctx, codes, ws, "o")
        x, codes = norm_into(self.post_norm, h, o, True, self.gate_up, ws, "x")
        if h.shape[0] <= SWIGLU_STORE_ROWS and swiglu_target(self.gate_up):
            m = ws.get("m", (h.shape[0], self.gate_up.out_features // 2))
            g = self.gate_up
            bias = g.qweight.zero_bias if g.bias is None else g.bias
            kernel, args = engine.bound_q4_linear(x, g.qweight, bias, m, glu=True)
            engine.check_blocks_status(call(ws, "linear", kernel, *args))
            return project(self.down, m, None, ws, "down")
        gu = project(self.gate_up, x, codes, ws, "gu")
        m = ws.get("m", (h.shape[0], gu.shape[1] // 2))
        par = gu.size >= nq_config.PARALLEL_MIN and nq_config.num_threads() > 1
        kernels = (kd._swiglu_par if par else kd._swiglu, kd._swiglu_quant)
        codes = quantize_for(self.down, kernels, "SwiGLU", (gu,), ws, m)
        return project(self.down, m, codes, ws, "down")


# ------------------------------------------------------------------ the decoder
class DecodePlan(StepWorkspace):
    """The kernel calls of one step of a fixed number of new tokens, recorded on the first
    such step and replayed on later ones: the same kernels on the same buffers, the new
    token ids, sequences and positions written into them first. At one token per step the
    Python between kernels (lookups, checks, buffers) cost as much as the kernels of a
    small model; a replay is a loop of kernel calls. The attention kernel (serial or
    parallel) is chosen again each step, by the positions."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seq = self.pos = self.h = self.delta = None

    def replay(self, model, flat, seq, pos):
        self.seq[:] = seq
        self.pos[:] = pos
        np.take(model.embed_tokens, flat, axis=0, out=self.h)
        attention = None  # serial or parallel: by this step's positions, once a step
        for piece, kernel, args in self.calls:
            if kernel in ATTENTION_FNS:
                if attention is None:
                    attention = attention_kernel(pos, args[-1].shape[1])  # args[-1]: ctx
                kernel = attention
            status = kernel(*args)
            if status:
                check_status(status, piece)
        return self.h, self.delta


ATTENTION_FNS = frozenset(ATTENTION_KERNELS.values())
NO_PLAN = DecodePlan(None)  # a cache's mark for steps that run without a plan
