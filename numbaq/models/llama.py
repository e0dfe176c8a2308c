"""Llama-family decoders on numpy, from a GGUF file or a checkpoint directory, without torch.

``load(path)`` reads a GGUF file (``numbaq.models.gguf``: llama.cpp's F32, F16, Q8_0,
Q4_0 and Q4_1 tensors, and the file's own tokenizer) or a transformers directory
(``config.json``, ``model.safetensors``, ``tokenizer.json``) and builds a
:class:`LlamaDecoder` of numbaq layers: token embedding; per layer RMSNorm, the query, key
and value projections as one Linear, rotary position embedding, grouped-query attention
over a KV cache, the output projection, RMSNorm, gate and up projections as one Linear,
SwiGLU and the down projection (pre-norm residuals); a final RMSNorm and the output head
(tied to the embedding or separate). :func:`numbaq.quantize_dynamic` makes its int8 twin.

**Fused for speed** (``kernels.decoder``). Each RMSNorm adds the residual in the same pass
and, before a plain int8 Linear, also writes that Linear's quantized activations; so do
the attention (for the output projection) and SwiGLU (for the down projection): bit for
bit the codes the Linear would make, one kernel call fewer each. The fused Q, K, V and the
fused gate and up have per-channel weight scales and per-token activation scales, so they
equal the separate Linears bit for bit.

**The KV cache** keeps every layer's keys (transposed) and values per sequence; float32,
or ``kv_cache="int8"``: symmetric int8 codes with one runtime scale per token and head
(``absmax / 127``), a quarter of the bytes.

**Ragged batches.** The new tokens of all sequences are stacked into one matrix, so every
Linear sees only real tokens; each token attends to its own sequence's cache. A sequence's
logits depend neither on its batch-mates nor on the thread count, bit for bit.

Math (transformers' ``LlamaForCausalLM``), per layer, for hidden states ``h`` (T, D)::

    x = rms_norm(h) * w_in            rms_norm(h) = h / sqrt(mean(h^2) + eps)
    q, k, v = x Wq^T, x Wk^T, x Wv^T  then q, k rotated by position (rotate_half layout)
    h = h + softmax(q k^T / sqrt(d) + causal) v Wo^T     (head i reads kv head i // group)
    x = rms_norm(h) * w_post
    h = h + (silu(x Wg^T) * (x Wu^T)) Wd^T
    logits = (rms_norm(h) * w_norm) W_head^T
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import config as nq_config
from ..layers import Linear, Module
from . import llama_layers
from ._checkpoint import read_safetensors
from .bert_layers import Workspace, profiling
from .llama_layers import (  # the decoder's pieces, also importable from here
    ATTENTION_KERNELS,
    ATTENTION_PARALLEL_MIN,
    KV_CACHE,
    NO_PLAN,
    DecodePlan,
    KVCache,
    LlamaConfig,
    LlamaLayer,
    RMSNorm,
    norm_into,
    project,
    rope_tables,
)

__all__ = [
    "ATTENTION_KERNELS",
    "ATTENTION_PARALLEL_MIN",
    "KV_CACHE",
    "KVCache",
    "LlamaConfig",
    "LlamaDecoder",
    "LlamaLayer",
    "RMSNorm",
    "Sampler",
    "apply_chat_template",
    "load",
    "perplexity",
    "quantize",
    "read_gguf",
]


class LlamaDecoder(Module):
    """A Llama-family decoder: ``model(ids)`` gives the logits, :meth:`generate` continues
    a prompt. Build it with :func:`load`.

    Parameters
    ----------
    params : dict of str to array
        Arrays by transformers' names without the ``model.`` prefix (``embed_tokens.weight``,
        ``layers.{i}.self_attn.q_proj.weight``, ..., ``norm.weight``, ``lm_head.weight``).
    config : LlamaConfig or dict
        The hyper-parameters (checked against ``params``).
    tokenizer : tokenizers.Tokenizer, optional
        For :meth:`tokenize` and :meth:`detokenize`; without it, pass token ids.
    kv_cache : {"float32", "int8"}
        The KV cache's storage (module notes).

    Attributes
    ----------
    stats : dict
        Of the last :meth:`generate`: ``prompt_tokens``, ``new_tokens``, ``prefill_s``,
        ``decode_s``, ``decode_tokens_per_s``.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import smollm2
    >>> if not smollm2.available():
    ...     pytest.skip(smollm2.INSTALL)
    >>> import numbaq
    >>> model = numbaq.quantize_dynamic(smollm2.load(), progress=False)
    >>> ids = model.tokenize("The capital of France is")
    >>> model(ids).shape == (ids.size, model.config.vocab_size)
    True
    >>> model.detokenize(model.generate(ids, max_new_tokens=2))
    ' Paris.'
    """

    def __init__(self, params: dict, config, tokenizer=None, kv_cache: str = "float32"):
        super().__init__()
        cfg = config if isinstance(config, LlamaConfig) else LlamaConfig.from_dict(config)
        _check_params(params, cfg)
        embed = np.ascontiguousarray(params["embed_tokens.weight"], np.float32)
        self._param("embed_tokens", embed)
        for i in range(cfg.num_hidden_layers):
            self._child(f"layer{i}", LlamaLayer(params, i, cfg))
        self._child("norm", RMSNorm(params["norm.weight"], cfg.rms_norm_eps))
        head = params.get("lm_head.weight")
        self._child("lm_head", Linear(embed if head is None else head))
        self.config = cfg
        self.tokenizer = tokenizer
        if kv_cache not in KV_CACHE:
            raise ValueError(f"kv_cache must be one of {KV_CACHE}, got {kv_cache!r}")
        self.kv_cache = kv_cache
        self.source = None  # the GGUF file it was loaded from (load), for its stored blocks
        self.stats: dict = {}
        self._rope = rope_tables(cfg, min(cfg.max_position_embeddings, 4096))

    @property
    def layers(self) -> list:
        """The :class:`LlamaLayer` children, in order."""
        return [self._modules[f"layer{i}"] for i in range(self.config.num_hidden_layers)]

    # -------------------------------------------------------------- text
    def tokenize(self, text: str, chat: bool = False) -> np.ndarray:
        """Token ids of ``text``.

        Parameters
        ----------
        text : str
            The text to tokenize.
        chat : bool
            Wrap ``text`` as one user turn in the checkpoint's chat template, with the
            assistant's prompt after it.

        Returns
        -------
        (T,) int64
            The token ids.
        """
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; pass token ids")
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if chat:
            text = apply_chat_template(self.config, [{"role": "user", "content": text}])
        return np.asarray(self.tokenizer.encode(text, add_special_tokens=not chat).ids, np.int64)

    def detokenize(self, ids) -> str:
        """The text of token ids (special tokens dropped).

        Parameters
        ----------
        ids : int array
            Token ids.

        Returns
        -------
        str
            Their text.
        """
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer")
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)])

    # -------------------------------------------------------------- forward
    def _ids(self, ids, name: str = "ids") -> np.ndarray:
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu" or arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{name} must be a non-empty 1-D array of token ids, got {arr.dtype} {arr.shape}"
            )
        v = self.config.vocab_size
        if arr.min() < 0 or arr.max() >= v:
            raise ValueError(
                f"{name}: token ids must lie in [0, vocab_size = {v}), got {arr.min()}..{arr.max()}"
            )
        return arr.astype(np.int64)

    def new_cache(self, batch: int = 1, capacity: int = 256) -> KVCache:
        """An empty :class:`KVCache` in this model's ``kv_cache`` storage.

        Parameters
        ----------
        batch : int
            Sequences.
        capacity : int
            Positions to make room for (it grows when needed).

        Returns
        -------
        KVCache
            Empty: every sequence at length 0.
        """
        return KVCache(self.config, batch, capacity, self.kv_cache)

    def step(self, ids: list, cache: KVCache, last_only: bool = False) -> np.ndarray:
        """Feed new tokens to the sequences of ``cache`` (a ragged batch).

        Parameters
        ----------
        ids : list of int arrays
            ``ids[s]`` (possibly empty) continues sequence ``s``.
        cache : KVCache
            Updated in place.
        last_only : bool
            Only the logits of each sequence's last new token (generation).

        Returns
        -------
        (T, vocab) float32
            The logits of every new token, stacked in order; with ``last_only`` one row
            per sequence that got tokens.
        """
        if not isinstance(cache, KVCache) or cache.config != self.config:
            raise ValueError(
                "cache: a KVCache of this model's config is needed (the kernels trust its "
                "shapes); make one with model.new_cache(batch, capacity)"
            )
        if isinstance(ids, np.ndarray) or not isinstance(ids, (list, tuple)):
            raise TypeError("ids: a list with one token-id array per cached sequence")
        if len(ids) != cache.batch:
            raise ValueError(f"ids: one array per cached sequence ({cache.batch}), got {len(ids)}")
        ids = [
            self._ids(x, f"ids[{s}]") if np.size(x) else np.zeros(0, np.int64)
            for s, x in enumerate(ids)
        ]
        counts = np.array([x.size for x in ids], np.int64)
        if not counts.sum():
            raise ValueError("ids: no new tokens")
        start = cache.lengths.copy()
        end = start + counts
        limit = self._rope[0].shape[0]
        if end.max() > limit:
            raise ValueError(
                f"a sequence would reach {end.max()} tokens, past this model's {limit} positions"
            )
        cache.reserve(int(end.max()))
        seq = np.repeat(np.arange(cache.batch), counts)
        pos = np.concatenate([np.arange(a, b) for a, b in zip(start, end)])
        flat = np.concatenate(ids)
        plan = self._plan(cache, flat.size)
        if plan is not None and plan.calls:
            h, delta = plan.replay(self, flat, seq, pos)
        else:
            ws = plan or Workspace()
            h = ws.get("h", (flat.size, self.config.hidden_size))
            np.take(self.embed_tokens, flat, axis=0, out=h)
            if plan is not None:  # the buffers the recorded calls will be replayed on
                plan.seq, plan.pos, plan.h = seq, pos, h
            delta = h  # not added on the first layer
            for i, layer in enumerate(self.layers):
                delta = layer.run(h, delta, i > 0, (seq, pos), cache.layers[i], self._rope, ws)
            if plan is not None:
                plan.delta = delta
        ws = Workspace()
        cache.lengths = end
        if last_only:  # each sequence's last new row (copies: the buffers stay as they are)
            last = np.cumsum(counts)[counts > 0] - 1
            h, delta = h[last], delta[last]
        x, codes = norm_into(self.norm, h, delta, True, self.lm_head, ws, "x")
        logits = project(self.lm_head, x, codes, ws, "logits")
        return logits.copy()

    def _plan(self, cache: KVCache, rows: int):
        """The :class:`DecodePlan` of ``cache`` for steps of ``rows`` new tokens (empty:
        to be recorded by this step), or None where a step cannot be replayed: a Linear
        that is neither a plain nor a block-scaled int8 one (float, static, outlier), or a
        :func:`~numbaq.models.bert_layers.profile`, :func:`numbaq.trace` or
        :func:`numbaq.compare` watching the calls."""
        first = self.layers[0].qkv
        if profiling() or first.trace_log is not None or first._recorder is not None:
            return None
        key = (rows, nq_config.num_threads(), nq_config.GEMM_PATH, cache.capacity)
        plan = cache.plans.get(key)
        if plan is None or plan.model is not self:
            linears = [
                getattr(layer, n) for layer in self.layers for n in ("qkv", "o", "gate_up", "down")
            ]
            plannable = all(
                llama_layers.quant_target(linear) is not None or llama_layers.block_target(linear)
                for linear in linears
            )
            plan = cache.plans[key] = DecodePlan(self) if plannable else NO_PLAN
        return plan if plan is not NO_PLAN else None

    def forward(self, ids):
        """The logits of one sequence, from a fresh cache.

        Parameters
        ----------
        ids : (T,) int array
            The sequence's token ids.

        Returns
        -------
        (T, vocab) float32
            The logits of the next token after each position.
        """
        ids = self._ids(ids)
        return self.step([ids], self.new_cache(1, ids.size))

    # -------------------------------------------------------------- generation
    def stream(
        self,
        ids,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop=None,
    ):
        """Generate like :meth:`generate`, yielding each new token id as it is made.

        Parameters
        ----------
        ids : (T,) int array
            The prompt's token ids.
        max_new_tokens : int
            At most this many new tokens.
        temperature, top_p : float
            As for :meth:`generate`.
        top_k : int
            As for :meth:`generate`.
        seed : int, optional
            As for :meth:`generate`.
        stop : int or iterable of int, optional
            As for :meth:`generate`.

        Yields
        ------
        int
            The next token id.
        """
        ids = self._ids(ids)
        sampler = Sampler(temperature, top_k, top_p, seed)
        _check_count(max_new_tokens)
        stop = set(self.config.eos_token_id if stop is None else _stop_ids(stop))
        cache = self.new_cache(1, ids.size + max_new_tokens)
        self.stats = {"prompt_tokens": int(ids.size), "new_tokens": 0}
        t0 = time.perf_counter()
        if not max_new_tokens:
            return
        logits = self.step([ids], cache, last_only=True)
        t1 = time.perf_counter()
        self.stats["prefill_s"] = t1 - t0
        for n in range(max_new_tokens):
            token = sampler(logits[0])
            self.stats["new_tokens"] = n + 1
            decode_s = time.perf_counter() - t1
            self.stats["decode_s"] = decode_s
            self.stats["decode_tokens_per_s"] = n / decode_s if n else float("nan")
            yield token
            if token in stop or n + 1 == max_new_tokens:
                return
            logits = self.step([np.array([token])], cache, last_only=True)

    def generate(
        self,
        ids,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop=None,
        callback=None,
    ) -> np.ndarray:
        """Continue ``ids`` (T,) by up to ``max_new_tokens`` tokens.

        Parameters
        ----------
        ids : (T,) int array
            The prompt's token ids.
        max_new_tokens : int
            At most this many new tokens.
        temperature : float
            0: greedy (the most likely token, the first on ties); else sample from
            ``softmax(logits / temperature)``.
        top_k : int
            Keep the ``top_k`` most likely tokens (0: all).
        top_p : float
            Keep the smallest set of most likely tokens whose probability reaches ``top_p``.
        seed : int, optional
            For sampling; the same seed gives the same tokens.
        stop : int or iterable of int, optional
            Token ids that end generation (kept in the output); default the checkpoint's
            end-of-sequence ids.
        callback : callable, optional
            Called with each new token id as soon as it is made (streaming).

        Returns
        -------
        (n,) int64
            The new token ids; :attr:`stats` has the timings.
        """
        out = []
        for token in self.stream(ids, max_new_tokens, temperature, top_k, top_p, seed, stop):
            out.append(token)
            if callback is not None:
                callback(token)
        return np.array(out, np.int64)

    def generate_batch(
        self,
        prompts: list,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop=None,
    ) -> list:
        """Continue several prompts at once: one ragged batch through the KV cache, each
        step feeding one new token of every sequence still running.

        Parameters
        ----------
        prompts : list of (T_i,) int arrays
            The prompts' token ids (any lengths: no padding).
        max_new_tokens : int
            At most this many new tokens per sequence.
        temperature, top_p : float
            As for :meth:`generate`.
        top_k : int
            As for :meth:`generate`.
        stop : int or iterable of int, optional
            As for :meth:`generate`; a sequence that makes one stops, the others go on.
        seed : int, optional
            Sequence ``i`` samples with ``seed + i`` (the tokens :meth:`generate` gives
            it alone with that seed).

        Returns
        -------
        list of (n_i,) int64
            Each prompt's new token ids: greedy, the ids :meth:`generate` gives it alone
            (a sequence's logits do not depend on its batch-mates, bit for bit, int8).
        """
        if isinstance(prompts, np.ndarray) or not isinstance(prompts, (list, tuple)) or not prompts:
            raise TypeError("prompts must be a non-empty list of token-id arrays")
        prompts = [self._ids(p, f"prompts[{i}]") for i, p in enumerate(prompts)]
        _check_count(max_new_tokens)
        stop = set(self.config.eos_token_id if stop is None else _stop_ids(stop))
        samplers = [
            Sampler(temperature, top_k, top_p, None if seed is None else seed + i)
            for i in range(len(prompts))
        ]
        out: list = [[] for _ in prompts]
        if not max_new_tokens:
            return [np.zeros(0, np.int64) for _ in prompts]
        cache = self.new_cache(len(prompts), max(p.size for p in prompts) + max_new_tokens)
        logits = self.step(prompts, cache, last_only=True)  # one row per sequence
        active = list(range(len(prompts)))
        while active:
            feed = [np.zeros(0, np.int64) for _ in prompts]
            running = []
            for row, s in enumerate(active):
                token = samplers[s](logits[row])
                out[s].append(token)
                if token not in stop and len(out[s]) < max_new_tokens:
                    feed[s] = np.array([token])
                    running.append(s)
            active = running
            if active:
                logits = self.step(feed, cache, last_only=True)
        return [np.array(o, np.int64) for o in out]

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}"
            f"/{c.num_key_value_heads}, vocab={c.vocab_size}, kv_cache={self.kv_cache}"
        )


def _check_count(max_new_tokens) -> None:
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, (int, np.integer))
        or max_new_tokens < 0
    ):
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")


def _stop_ids(stop) -> tuple:
    stop = [stop] if isinstance(stop, (int, np.integer)) else list(stop)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in stop):
        raise TypeError(f"stop must be a token id or an iterable of token ids, got {stop!r}")
    return tuple(int(s) for s in stop)


class Sampler:
    """Picks the next token from logits: greedy at temperature 0, else top-k / top-p
    sampling from ``softmax(logits / temperature)`` (float64) with its own generator.

    Parameters
    ----------
    temperature : float
        0: the most likely token (the first on ties).
    top_k : int
        Keep the ``top_k`` most likely tokens (0: all).
    top_p : float
        Keep the smallest set of most likely tokens whose probability reaches ``top_p``.
    seed : int, optional
        Seeds the generator.

    Examples
    --------
    >>> Sampler()(np.array([0.1, 2.0, 2.0, -1.0], np.float32))
    1
    """

    def __init__(self, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed=None):
        if not isinstance(temperature, (int, float, np.number)) or not (
            np.isfinite(temperature) and temperature >= 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0: no limit), got {top_k!r}")
        if not isinstance(top_p, (int, float, np.number)) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        if not np.isfinite(logits).all():
            raise ValueError("logits hold NaN or Inf")
        if self.temperature == 0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / self.temperature
        order = np.argsort(-z, kind="stable")
        if self.top_k:
            order = order[: self.top_k]
        p = np.exp(z[order] - z[order[0]])
        p /= p.sum()
        if self.top_p < 1:
            keep = int(np.searchsorted(np.cumsum(p), self.top_p)) + 1
            order, p = order[:keep], p[:keep] / p[:keep].sum()
        return int(order[self.rng.choice(p.size, p=p)])


def apply_chat_template(
    config: LlamaConfig, messages: list, add_generation_prompt: bool = True
) -> str:
    """The checkpoint's chat template (Jinja) applied to ``messages``, as transformers'
    ``apply_chat_template`` renders it.

    Parameters
    ----------
    config : LlamaConfig
        Holds the template.
    messages : list of dict
        ``{"role": ..., "content": ...}`` turns.
    add_generation_prompt : bool
        End with the assistant's prompt.

    Returns
    -------
    str
        The rendered prompt.

    Examples
    --------
    >>> cfg = LlamaConfig(8, 16, 1, 2, 2, 4, 10, chat_template="{{ messages[0]['content'] }}!")
    >>> apply_chat_template(cfg, [{"role": "user", "content": "hi"}])
    'hi!'
    """
    if not config.chat_template:
        raise ValueError("this checkpoint has no chat template (chat_template)")
    try:
        import jinja2
    except ImportError as err:  # pragma: no cover - jinja2 comes with transformers
        raise ImportError("chat templates need jinja2: pip install jinja2") from err
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(config.chat_template).render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token="",
        eos_token="",
    )


def perplexity(model: LlamaDecoder, text, window: int = 512) -> float:
    r"""``exp(mean negative log-likelihood)`` of ``text`` under ``model``.

    The tokens are cut into consecutive windows of ``window`` tokens, each run from an empty
    cache; every token but a window's first is scored from the logits of the one before
    (float64 log-softmax).

    Parameters
    ----------
    model : LlamaDecoder
        Float or quantized.
    text : str or (T,) int array
        Text (tokenized with the model's tokenizer) or token ids.
    window : int
        Tokens per window (at least 2).

    Returns
    -------
    float
        The perplexity.

    Notes
    -----
    .. math:: \mathrm{ppl} = \exp\Big(-\frac{1}{N}\sum_t \log p(x_t \mid x_{<t})\Big)

    Plain text: ``ppl = exp(-mean(log p(token | the window's tokens before it)))``.

    Examples
    --------
    >>> cfg = LlamaConfig(8, 16, 1, 2, 2, 4, 10)
    >>> rng = np.random.default_rng(0)
    >>> params = {"embed_tokens.weight": rng.normal(size=(10, 8)), "norm.weight": np.ones(8),
    ...           "lm_head.weight": np.zeros((10, 8)),
    ...           "layers.0.input_layernorm.weight": np.ones(8),
    ...           "layers.0.post_attention_layernorm.weight": np.ones(8)}
    >>> for n, shape in [("self_attn.q_proj", (8, 8)), ("self_attn.k_proj", (8, 8)),
    ...                  ("self_attn.v_proj", (8, 8)), ("self_attn.o_proj", (8, 8)),
    ...                  ("mlp.gate_proj", (16, 8)), ("mlp.up_proj", (16, 8)),
    ...                  ("mlp.down_proj", (8, 16))]:
    ...     params[f"layers.0.{n}.weight"] = rng.normal(size=shape) * 0.1
    >>> round(perplexity(LlamaDecoder(params, cfg), np.arange(10), window=5), 4)  # zero head
    10.0
    """
    ids = model.tokenize(text) if isinstance(text, str) else model._ids(text, "text")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window must be an int >= 2, got {window!r}")
    if ids.size < 2:
        raise ValueError("text must hold at least 2 tokens")
    nll, count = 0.0, 0
    for lo in range(0, ids.size - 1, window):
        chunk = ids[lo : lo + window]
        if chunk.size < 2:
            break
        z = model(chunk)[:-1].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll -= logp[np.arange(chunk.size - 1), chunk[1:]].sum()
        count += chunk.size - 1
    return float(np.exp(nll / count))


def quantize(
    model: LlamaDecoder, scheme=None, head_scheme="BLOCK_Q8_0", weights: str = "int8", **kwargs
) -> LlamaDecoder:
    """The decoder's recipes: every Linear under ``scheme``, the output head under
    ``head_scheme``; with ``weights="q4_1"`` the layers' Linears on 4-bit block weights.

    The head's input (the final RMSNorm's output) is where one scale per token loses
    most: on SmolLM2-135M-Instruct, 2,048 tokens of prose, per-token activations on every
    Linear cost +3.2% perplexity, and +1.6% with the head's activations in blocks of 32
    (``BLOCK_Q8_0``, with weight groups of 32: a head tied to a Q8_0 embedding, as in
    llama.cpp's files, keeps the file's codes and scales exactly).

    Parameters
    ----------
    model : LlamaDecoder
        The float model (left unchanged).
    scheme : str or QScheme, optional
        For every Linear but the head (default :data:`numbaq.schemes.DEFAULT_SCHEME`).
    head_scheme : str or QScheme, optional
        For the head; ``None``: ``scheme`` as well. A block scheme gets weight groups of
        its block size.
    weights : {"int8", "q4_1"}
        The layers' weights: int8 per channel (under ``scheme``), or llama.cpp's Q4_1
        (:class:`~numbaq.layers.q4.Q4Linear`: 4-bit codes, a half-precision scale and
        offset per block of 32, activations in blocks of 32; ``scheme`` must be None).
        A model loaded from a GGUF file keeps the file's Q4_1 and Q4_0 blocks exactly as
        stored (Q4_0 as ``m = -8 d``); other weights are quantized by llama.cpp's Q4_1
        rule. Decode reads 0.625 bytes a weight instead of 1.
    **kwargs
        Passed to :func:`numbaq.quantize_dynamic` for the other Linears.

    Returns
    -------
    LlamaDecoder
        The quantized copy.

    Examples
    --------
    >>> cfg = LlamaConfig(32, 64, 1, 2, 1, 16, 10)
    >>> rng = np.random.default_rng(0)
    >>> shapes = {"embed_tokens.weight": (10, 32), "norm.weight": (32,),
    ...           "layers.0.input_layernorm.weight": (32,),
    ...           "layers.0.post_attention_layernorm.weight": (32,),
    ...           "layers.0.self_attn.q_proj.weight": (32, 32),
    ...           "layers.0.self_attn.k_proj.weight": (16, 32),
    ...           "layers.0.self_attn.v_proj.weight": (16, 32),
    ...           "layers.0.self_attn.o_proj.weight": (32, 32),
    ...           "layers.0.mlp.gate_proj.weight": (64, 32),
    ...           "layers.0.mlp.up_proj.weight": (64, 32),
    ...           "layers.0.mlp.down_proj.weight": (32, 64), "lm_head.weight": (10, 32)}
    >>> model = LlamaDecoder({k: rng.normal(size=v) for k, v in shapes.items()}, cfg)
    >>> q = quantize(model)
    >>> q.layer0.qkv.scheme.name, q.lm_head.scheme.name, q.lm_head.qweight.group_size
    ('PER_TOKEN_UINT8', 'BLOCK_Q8_0', 32)
    """
    from .. import convert, schemes

    if not isinstance(model, LlamaDecoder):
        raise TypeError(f"model must be a LlamaDecoder, got {type(model).__name__}")
    if weights not in ("int8", "q4_1"):
        raise ValueError(f"weights must be 'int8' or 'q4_1', got {weights!r}")
    if weights == "q4_1":
        if scheme is not None or kwargs:
            raise ValueError(
                "weights='q4_1' fixes the layers' activations (blocks of 32, BLOCK_Q8_0): "
                "leave scheme and the quantize_dynamic options out"
            )
        from ..layers import Linear
        from ..layers.base import replace_modules
        from ..layers.q4 import Q4Linear
        from ..weights_q4 import Q4Weight

        stored = _stored_q4(model)

        def to_q4(name, module):
            if type(module) is not Linear or name == "lm_head":
                return None
            if module.in_features % 32:
                raise ValueError(
                    f"{name}: weights='q4_1' needs in_features a multiple of 32 (blocks of "
                    f"32), got {module.in_features}; use weights='int8'"
                )
            w = stored.get(name)  # the file's own blocks, while the Linear holds their values
            if w is None or not np.array_equal(w.dequantize(), module.weight):
                pairs = name.endswith(".gate_up") and module.out_features % 16 == 0
                w = Q4Weight.from_float(module.weight, pairs=pairs)  # SwiGLU in its store
            return Q4Linear(w, module.bias)

        model = replace_modules(model, to_q4)
        if head_scheme is None:
            return model
    if head_scheme is None:
        return convert.quantize_dynamic(model, scheme=scheme, **{"progress": False, **kwargs})
    q = convert.quantize_dynamic(
        model, scheme=scheme, exclude=["lm_head"], **{"progress": False, **kwargs}
    )
    head = schemes.get(head_scheme)
    group = head.block_size if head.granularity == "block" else None
    return convert.quantize_dynamic(q, scheme=head, group_size=group, progress=False)


_Q4_PARTS = {  # a layer's Linears and the GGUF tensors they stack
    "qkv": ("attn_q", "attn_k", "attn_v"),
    "o": ("attn_output",),
    "gate_up": ("ffn_gate", "ffn_up"),
    "down": ("ffn_down",),
}


def _stored_q4(model: LlamaDecoder) -> dict:
    """``{Linear name: Q4Weight}``, exactly as stored, for the layers' Linears whose tensors
    the model's GGUF file (``model.source``) stores in Q4_1 or Q4_0; empty otherwise."""
    if model.source is None:
        return {}
    from ..weights_q4 import Q4Weight
    from . import gguf

    f, cfg, out = gguf.read(model.source), model.config, {}
    for i in range(cfg.num_hidden_layers):
        for linear, names in _Q4_PARTS.items():
            tensors = [f.tensors.get(f"blk.{i}.{name}.weight") for name in names]
            if any(t is None or t.type not in ("Q4_0", "Q4_1") for t in tensors):
                continue
            parts = []
            for name, t in zip(names, tensors):
                arrays = gguf.q4_weight(t)
                if name in ("attn_q", "attn_k"):  # llama.cpp's rotary row order, undone
                    heads = cfg.num_attention_heads if name == "attn_q" else cfg.num_key_value_heads
                    arrays = [gguf.unpermute_rows(a, heads) for a in arrays]
                parts.append(arrays)
            arrays = (np.concatenate(a) for a in zip(*parts))
            out[f"layer{i}.{linear}"] = Q4Weight(*arrays, pairs=linear == "gate_up")
    return out


# ------------------------------------------------------------------ loading
def _check_params(params: dict, cfg: LlamaConfig) -> None:
    """Every array the config implies, with its shape; ``ValueError`` names array and field."""
    d, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    hd, h, kv = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    want = {
        "embed_tokens.weight": ((v, d), "vocab_size, hidden_size"),
        "norm.weight": ((d,), "hidden_size"),
    }
    if "lm_head.weight" in params or not cfg.tie_word_embeddings:
        want["lm_head.weight"] = ((v, d), "vocab_size, hidden_size")
    for i in range(cfg.num_hidden_layers):
        p = f"layers.{i}."
        want.update(
            {
                p + "input_layernorm.weight": ((d,), "hidden_size"),
                p + "post_attention_layernorm.weight": ((d,), "hidden_size"),
                p + "self_attn.q_proj.weight": (
                    (h * hd, d),
                    "num_attention_heads * head_dim, hidden_size",
                ),
                p + "self_attn.k_proj.weight": (
                    (kv * hd, d),
                    "num_key_value_heads * head_dim, hidden_size",
                ),
                p + "self_attn.v_proj.weight": (
                    (kv * hd, d),
                    "num_key_value_heads * head_dim, hidden_size",
                ),
                p + "self_attn.o_proj.weight": (
                    (d, h * hd),
                    "hidden_size, num_attention_heads * head_dim",
                ),
                p + "mlp.gate_proj.weight": ((f, d), "intermediate_size, hidden_size"),
                p + "mlp.up_proj.weight": ((f, d), "intermediate_size, hidden_size"),
                p + "mlp.down_proj.weight": ((d, f), "hidden_size, intermediate_size"),
            }
        )
    for name, (shape, fields) in want.items():
        if name not in params:
            raise ValueError(f"the checkpoint has no array {name!r} (the config implies it)")
        got = tuple(np.shape(params[name]))
        if got != shape:
            raise ValueError(
                f"array {name!r} has shape {got}, but the config ({fields}) gives {shape}"
            )
        if not np.isfinite(params[name]).all():
            raise ValueError(f"array {name!r} holds NaN or Inf: the checkpoint is damaged")


def _chat_template(path: Path) -> str | None:
    """The chat template of a transformers directory (``chat_template.jinja``, or the
    ``chat_template`` field of ``tokenizer_config.json``), or None."""
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "tokenizer_config.json").is_file():
        template = json.loads((path / "tokenizer_config.json").read_text()).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _strip(params: dict) -> dict:
    return {k[len("model.") :] if k.startswith("model.") else k: v for k, v in params.items()}


def load(path, kv_cache: str = "float32") -> LlamaDecoder:
    """Build a :class:`LlamaDecoder` from a GGUF file or a transformers directory.

    Parameters
    ----------
    path : str or Path
        A ``.gguf`` file (its weights dequantized to float32, the tokenizer from its own
        vocabulary), or a directory with ``config.json``, ``model.safetensors`` and
        (optionally) ``tokenizer.json``.
    kv_cache : {"float32", "int8"}
        The KV cache's storage (module notes).

    Returns
    -------
    LlamaDecoder
        The float model; :func:`numbaq.quantize_dynamic` makes its int8 twin.

    Raises
    ------
    FileNotFoundError
        If the file, or ``config.json`` / ``model.safetensors``, is missing.
    ValueError
        If the config does not fit the arrays, or the checkpoint is not a supported
        Llama-family decoder (the message names the file and the field).

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import smollm2
    >>> if not smollm2.available():
    ...     pytest.skip(smollm2.INSTALL)
    >>> model = load(smollm2.path())
    >>> model.config.num_hidden_layers, model.config.tie_word_embeddings
    (30, True)
    """
    path = Path(path)
    if path.is_file():
        params, config, tokenizer = read_gguf(path)
        model = LlamaDecoder(params, LlamaConfig.from_dict(config, str(path)), tokenizer, kv_cache)
        model.source = path
        return model
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such GGUF file or checkpoint directory")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path}: no {name}")
    try:
        config = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path / 'config.json'}: not valid JSON ({err})") from None
    if isinstance(config, dict) and "chat_template" not in config:
        config["chat_template"] = _chat_template(path)
    cfg = LlamaConfig.from_dict(config, str(path / "config.json"))
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    params = _strip(read_safetensors(path / "model.safetensors"))
    return LlamaDecoder(params, cfg, tokenizer, kv_cache)


def read_gguf(path) -> tuple[dict, dict, object]:
    """The arrays, config and tokenizer of a Llama GGUF file, as a transformers
    checkpoint would hold them.

    Parameters
    ----------
    path : str or Path
        The ``.gguf`` file (read with :mod:`numbaq.models.gguf`).

    Returns
    -------
    params : dict of str to float32 array
        transformers' names without the ``model.`` prefix, the weights dequantized and
        the query and key rows back in transformers' order.
    config : dict
        :func:`numbaq.models.gguf.config`.
    tokenizer : tokenizers.Tokenizer
        From the file's own vocabulary.

    Examples
    --------
    >>> import pytest
    >>> from numbaq.models import smollm2
    >>> if not smollm2.available():
    ...     pytest.skip(smollm2.INSTALL)
    >>> params, config, _ = read_gguf(smollm2.path())
    >>> params["layers.0.self_attn.k_proj.weight"].shape, config["num_key_value_heads"]
    ((192, 576), 3)
    """
    from . import gguf

    f = gguf.read(path)
    config = gguf.config(f)
    params = {}
    for name, tensor in f.tensors.items():
        key = gguf.role(name)[len("model.") if name != "output.weight" else 0 :]
        w = gguf.dequantize(tensor)
        if ".attn_q." in name or ".attn_k." in name:  # llama.cpp's rotary row order, undone
            heads = config["num_attention_heads" if ".attn_q." in name else "num_key_value_heads"]
            w = gguf.unpermute_rows(w, heads)
        params[key] = w
    return params, config, gguf.tokenizer(f)
